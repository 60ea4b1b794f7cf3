#pragma once

#include "server/connection.hpp"
#include "server/response.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstddef>
#include <fanout/metrics.hpp>
#include <fanout/options.hpp>
#include <list>
#include <memory>
#include <string>

namespace fanout {

// The operators' port (options::admin_listen_host): GET or HEAD /healthz, /metrics and /config,
// and 404 for anything else. Its connections are its own, at most max_connections at once (more get
// a 503), never counted in --max-connections: an instance whose clients hold every connection it
// may open can still be health-checked and scraped. Requests have the main listener's size and time
// limits. Runs on one executor, which must run one handler at a time (as an http_server's).
class admin_listener : public std::enable_shared_from_this<admin_listener> {
  public:
    static constexpr std::size_t max_connections = 16;

    // Binds and listens at once; throws as open_listener(). /healthz answers 503 once any shard of
    // `registry` is draining; /metrics is the registry's page; /config is describe(opts), with the
    // ports as bound (`main`: the main listener's address).
    admin_listener(
        boost::asio::any_io_executor ex,
        options const& opts,
        std::shared_ptr<metrics_registry> registry,
        boost::asio::ip::tcp::endpoint const& main
    );

    boost::asio::ip::tcp::endpoint local_endpoint() const;
    void start();  // accepts until close()
    // Closes the listener and every connection at once; an answer being written is cut short.
    void close();
    // Limits and /config from these options on (a reload's).
    void configure(options const& opts);

  private:
    struct limits {
        std::chrono::milliseconds header_timeout, idle_timeout;
        std::size_t max_request_head, max_request_body;
    };

    static boost::asio::awaitable<void> accept(std::shared_ptr<admin_listener> self);
    static boost::asio::awaitable<void> session(
        std::shared_ptr<admin_listener> self, boost::asio::ip::tcp::socket sock
    );
    boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket& sock, phase_deadline& limit);
    response answer(request_parser const& request) const;
    bool draining() const;

    boost::asio::any_io_executor ex_;
    boost::asio::ip::tcp::acceptor acceptor_;
    std::shared_ptr<metrics_registry> registry_;
    limits limits_;
    std::string config_;  // /config's body
    std::uint16_t main_port_;
    std::list<boost::asio::ip::tcp::socket*> sockets_;  // of the open connections
    http_date date_;
    bool closed_ = false;
};

}  // namespace fanout
