#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <fanout/client.hpp>
#include <fanout/detail/token.hpp>
#include <fanout/metrics.hpp>
#include <fanout/old_namespaces.hpp>
#include <fanout/options.hpp>
#include <fanout/server_error.hpp>
#include <memory>
#include <optional>

namespace fanout {

// fanout's HTTP/1.1 server on one executor: an acceptor, its sessions, and its own upstream
// client and pool. It owns no threads. Its executor must run one handler at a time: an io_context
// run by one thread, or a strand (e.g. boost::asio::make_strand(ioc)) of one that several threads
// run (tested under TSan). Fastest with several threads: one http_server per single-threaded event
// loop, all with reuse_port on the same port and sharing one metrics_registry.
class http_server {
  public:
    using executor_type = boost::asio::any_io_executor;

    // Binds and listens at once, so that local_endpoint() is known; serving starts with run().
    // `registry` and `shard`: where this server's metrics go (null: a registry of its own).
    // Throws boost::system::system_error naming the address when it cannot be bound, or when another
    // process listens there too (reuse_port is shared only among one process's own listeners).
    http_server(
        executor_type ex,
        options opts,
        std::shared_ptr<metrics_registry> registry = nullptr,
        std::size_t shard = 0,
        bool reuse_port = false
    );
    http_server(http_server const&) = delete;
    http_server& operator=(http_server const&) = delete;
    // Stops the server at once, as cancel() (a run in progress completes once all is closed). Safe
    // before, during or after a run, from any thread; the io_context must still exist.
    ~http_server();

    executor_type get_executor() const noexcept;
    boost::asio::ip::tcp::endpoint local_endpoint() const;
    // The admin listener's address (options::admin_listen_host), which this server opened since it
    // has shard 0; nullopt for none. It serves from run() on until the server has drained (through
    // the drain delay and the grace), /healthz answering 503 from the start of a shutdown.
    std::optional<boost::asio::ip::tcp::endpoint> admin_endpoint() const;

    // Serves until shutdown() or cancel(), and completes once every connection is closed.
    // Completion signature: void(boost::system::error_code): empty after a shutdown or cancel();
    // else the failure that stopped the accept loop (already logged): a system error's code, or
    // server_error::internal. Executor: the server runs on its own; the handler runs on its
    // associated executor, by default the server's. Per-operation cancellation: terminal, which
    // is cancel() (the run still completes only once everything is closed). Lifetime: the
    // server may be destroyed during the run (that is cancel()); the run completes afterwards.
    // Thread safety: call it on any thread, once.
    template <class CompletionToken = detail::default_token_t<executor_type>>
    auto async_run(CompletionToken&& token = CompletionToken{}) {
        return boost::asio::async_initiate<CompletionToken, void(boost::system::error_code)>(
            [](boost::asio::any_completion_handler<void(boost::system::error_code)> h, http_server* self) {
                self->initiate_run(std::move(h));
            },
            token, this
        );
    }

    // async_run() for a coroutine: throws what the run completes with, as a system_error.
    boost::asio::awaitable<void> run();

    // Graceful stop: no new connections; every request that reached the server is answered (the last
    // answer on a connection says `Connection: close`), those still running after `grace` are
    // cancelled. Idle keep-alive connections are closed at once unless a request is arriving on them.
    // Safe to call from any thread.
    void shutdown(std::chrono::milliseconds grace);
    // The same after the configured drain delay (--drain-delay-ms), during which the server accepts
    // and serves on, but /healthz answers 503 and each connection closes after its answer; then
    // shutdown(--shutdown-grace-ms). Calling shutdown(grace) meanwhile ends the delay.
    void shutdown();
    // Stops at once: shutdown with no grace. Safe to call from any thread.
    void cancel();

    // Read on the server's executor (not thread-safe):
    fanout::pool_stats upstream_stats() const noexcept;
    // The channel pattern's fetches still running detached (their request may have been answered).
    std::size_t detached_fetches() const noexcept;

    metrics_registry& metrics() const noexcept;

  private:
    void initiate_run(boost::asio::any_completion_handler<void(boost::system::error_code)> handler);

    struct impl;
    std::shared_ptr<impl> impl_;
};

}  // namespace fanout
