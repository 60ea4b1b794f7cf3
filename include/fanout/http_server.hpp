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

    // Reload: new requests are served with `opts` (upstreams and their resilience and TLS settings,
    // routes, limits, timeouts), while requests already read finish with the configuration they
    // started with. What only a new server can change keeps the server's values, whatever `opts`
    // says: listen_host, listen_port, admin_listen_host, admin_listen_port, threads, logger and
    // on_event (a logger the server made from on_event takes the new log_level; an application's own
    // logger keeps its level). The access log and the admin listener's limits and /config follow.
    //
    // Checked in this call, in the caller's thread: an invalid configuration throws what the
    // constructor would (std::invalid_argument naming the route or setting, a TLS file that cannot
    // be loaded) and changes nothing. Then, on the server's executor: the new configuration is made,
    // carrying over from the current one, for each service left as it was (every setting, and
    // its TLS files' contents), its idle connections, TLS sessions, circuit breaker, budgets and
    // latencies, and for each host and port that stay, their resolved addresses; new host names are
    // resolved (at most 10 s, as at start; a name that does not resolve fails its fetches as it
    // would at start). Then it switches: the requests read from then on use it. The idle pooled
    // connections of services removed or changed are closed at once, the others once their fetch
    // ends. The metrics keep the series of removed services and routes (see metrics_registry).
    //
    // Completion signature: void(boost::system::error_code): empty once this server has switched;
    // operation_aborted if it did not: the server was stopping, the operation was cancelled, or a
    // later reload switched first (reloads started from several threads at once: the last to be
    // checked wins); server_error::internal if making the configuration failed on the executor (a
    // TLS file changed since the check). Then nothing changed. Executor: the handler runs on its
    // associated executor, by default the server's. Per-operation cancellation: terminal, until
    // the switch (a wait for new host names still ends as it would, then nothing is switched).
    // Lifetime: the server may be destroyed meanwhile (the reload is then aborted at once).
    // Thread safety: call it on any thread.
    template <class CompletionToken = detail::default_token_t<executor_type>>
    auto async_reload(options opts, CompletionToken&& token = CompletionToken{}) {
        return boost::asio::async_initiate<CompletionToken, void(boost::system::error_code)>(
            [](boost::asio::any_completion_handler<void(boost::system::error_code)> h, http_server* self,
               boost::asio::awaitable<void> op) { self->initiate_reload(std::move(h), std::move(op)); },
            token, this, reload(std::move(opts))
        );
    }

    // Read on the server's executor (not thread-safe):
    fanout::pool_stats upstream_stats() const noexcept;
    // The channel pattern's fetches still running detached (their request may have been answered).
    std::size_t detached_fetches() const noexcept;

    metrics_registry& metrics() const noexcept;

  private:
    void initiate_run(boost::asio::any_completion_handler<void(boost::system::error_code)> handler);
    // Checks opts (throws) and numbers the reload; the awaitable switches on the server's executor.
    boost::asio::awaitable<void> reload(options opts);
    void initiate_reload(
        boost::asio::any_completion_handler<void(boost::system::error_code)> handler,
        boost::asio::awaitable<void> op
    );

    struct impl;
    std::shared_ptr<impl> impl_;
};

}  // namespace fanout
