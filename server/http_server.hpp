#pragma once

#include "handlers/aggregate.hpp"
#include "server/options.hpp"
#include "upstream/client.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <memory>

namespace fanout::server {

// fanout's HTTP/1.1 server on one executor: an acceptor, its sessions, and its own upstream
// client and pool. It owns no threads; to use several, run one http_server per event loop with
// reuse_port, all on the same port.
class http_server {
  public:
    using executor_type = boost::asio::any_io_executor;

    // Binds and listens at once, so that local_endpoint() is known; serving starts with start().
    // Throws boost::system::system_error when the address cannot be bound.
    http_server(executor_type ex, options opts, bool reuse_port = false);
    http_server(http_server const&) = delete;
    http_server& operator=(http_server const&) = delete;
    ~http_server();

    executor_type get_executor() const noexcept;
    boost::asio::ip::tcp::endpoint local_endpoint() const;

    void start();
    // Stops accepting new connections. Must run on the server's executor.
    void cancel();

    upstream::pool_stats upstream_stats() const noexcept;
    handlers::handler_stats const& handler_stats() const noexcept;

  private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

}  // namespace fanout::server
