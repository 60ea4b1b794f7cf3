#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <fanout/detail/token.hpp>
#include <fanout/error.hpp>
#include <fanout/old_namespaces.hpp>
#include <fanout/resolve.hpp>
#include <fanout/service.hpp>
#include <fanout/trace.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace fanout {

// A service's circuit breaker (service::breaker_failures): closed lets fetches through; open fails
// them at once; half-open lets one through, whose outcome closes or reopens it.
enum class breaker_state : std::uint8_t { closed, open, half_open };
std::string_view to_string(breaker_state s) noexcept;

// A change of a service's circuit breaker (client_options::on_breaker).
struct breaker_change {
    std::size_t service;  // its index in the client's services
    breaker_state state;  // the state entered
    // Entering open: the failure that opened it (a timeout for a request cut at its deadline),
    // and how many failed in a row (1 for a half-open probe); else null and 0.
    fetch_error const* failure = nullptr;
    unsigned failures = 0;
};

// One request of a fetch, once it has ended: the fetch's first, a hedge or a retry, from the
// moment the circuit breaker let it go (a failure to connect is one). A fetch refused by an open
// circuit has none. A request cut at fetch_context::timeout_at is an error (timeout); one cut at
// the request's deadline, a cancellation (cancel_reason::deadline).
struct request_report {
    std::size_t service;  // its index in the client's services
    request_outcome outcome;
    error_kind kind;       // error: what failed (never circuit_open nor cancelled)
    cancel_reason reason;  // cancelled: why
    std::chrono::steady_clock::duration elapsed;
    std::string_view trace_id;  // of the fetch's trace (fetch_context::trace); empty: none
};

// Why a fetch's caller cancels it, said by whoever cancels before doing so (errgroup when a sibling
// fails, the server when the client leaves or at shutdown): the first reason set stays. The client
// reads it when a request of the fetch ends cancelled (fetch_context::cause).
class cancel_cause {
  public:
    void set(cancel_reason r) noexcept {
        if (!reason_) reason_ = r;
    }
    std::optional<cancel_reason> reason() const noexcept { return reason_; }

  private:
    std::optional<cancel_reason> reason_;
};

// An HTTP field name (RFC 9110 token) of at most 64 characters.
bool valid_field_name(std::string_view name) noexcept;

struct client_options {
    std::size_t max_body = 1024 * 1024;  // larger bodies fail as error_kind::too_large
    // The status line and headers, and each chunk-size line and the trailer section: larger
    // fails as error_kind::protocol.
    std::size_t max_head = 16 * 1024;
    std::size_t max_idle_per_service = 256;  // idle keep-alive connections kept per service
    // Carries a fetch's time left (fetch_context::deadline) to the upstream; empty: never sent.
    // Else a valid_field_name(), or the client's constructor throws std::invalid_argument.
    std::string deadline_header = "X-Request-Timeout-Ms";
    // Resolves the services' host names (IP literals are used as they are), in the background: at
    // start, then when a fetch finds the addresses older than dns_refresh (0: at start only). A
    // fetch never waits for it: without an address yet it fails at once (error_kind::connect,
    // "resolving HOST"); client::async_wait_resolved waits for the first resolutions. A
    // failed resolution keeps the last good addresses; several are used in turn, and one that
    // refuses connections is passed over for 2 s. Empty: Asio's resolver (getaddrinfo()).
    resolve_function resolve{};
    std::chrono::milliseconds dns_refresh{30000};
    // A fetch cancelled after its request was written (errgroup's siblings, the deadline, the
    // client leaving) leaves its connection to finish in the background: an answer complete within
    // settle_time and settle_bytes puts it back in the pool; else it is closed. 0: closed at once.
    // A hedge's loser is always closed.
    std::chrono::milliseconds settle_time{100};
    std::size_t settle_bytes = 64 * 1024;
    // Called on the client's executor with how each cancelled fetch's connection ended.
    std::function<void(std::size_t service_index, bool kept)> on_cancelled_connection{};
    // Called on the client's executor when a service's circuit breaker changes state.
    std::function<void(breaker_change const&)> on_breaker{};
    // Called on the client's executor as each request of a fetch ends (request_report).
    std::function<void(request_report const&)> on_request{};
    // Called on the client's executor for each TLS handshake of an https:// service: a full one,
    // or one that resumed a session the service issued earlier (much cheaper for both sides).
    std::function<void(std::size_t service_index, bool resumed)> on_tls_handshake{};
};

// What one fetch tells its upstream besides the request itself.
struct fetch_context {
    // Sent in client_options::deadline_header: the whole milliseconds left until it when the
    // request is written, at least 1. Not a bound of the fetch itself (the caller's, e.g. `within`).
    std::optional<std::chrono::steady_clock::time_point> deadline;
    // Forwarded as `traceparent` (with a new parent id for this request) and `tracestate`; null:
    // none. One whose id is not 32 lower-case hex digits is not sent, nor a tracestate outside
    // printable ASCII (so nothing given here can break the request's framing).
    trace_context const* trace = nullptr;
    // Origin-form path and query sent instead of the service's own target (already expanded and
    // encoded: a route's backend path); empty: the service's, with `values` in its placeholders.
    // Its bytes must be valid in a request target (no space or control character).
    std::string_view target = {};
    // Header lines sent as they are, each "Name: value\r\n" (a route's forwarded headers); the
    // caller has checked the names and values.
    std::string_view headers = {};
    // Read when a request of the fetch ends cancelled, to tell why (cancel_cause); must outlive
    // the fetch. Null: the client tells what it can itself (a hedge that lost, the times below;
    // else cancel_reason::client_gone).
    cancel_cause const* cause = nullptr;
    // When the caller ends the fetch as the service's own timeout (its timeout_ms, a bound such as
    // options::max_fetch): a request cut then failed (error_kind::timeout). One cut earlier, at
    // `deadline` (the request's), was cancelled (cancel_reason::deadline).
    std::optional<std::chrono::steady_clock::time_point> timeout_at = {};
};

struct pool_stats {
    std::uint64_t opened = 0;  // connections established
    std::uint64_t reused = 0;  // requests sent on a pooled connection
    // pooled connections found closed, or with bytes nobody asked for: the request went on a new one
    std::uint64_t retried = 0;
    // connections of cancelled fetches (client_options::settle_time): pooled again, or closed
    std::uint64_t settled_kept = 0;
    std::uint64_t settled_closed = 0;
    // TLS handshakes of new connections to https:// services: full ones, and session resumptions
    std::uint64_t tls_full = 0;
    std::uint64_t tls_resumed = 0;
};

// HTTP/1.1 client for the configured services with a pool of keep-alive connections per service.
// Not thread-safe: it belongs to one executor (one thread, or a strand); run one per event loop.
class client {
  public:
    using executor_type = boost::asio::any_io_executor;

    client(executor_type ex, std::vector<service> services, client_options options);
    // A client for a new configuration (a reload) that carries over what `previous`, a client on
    // the same executor, has built up for each service it leaves as it was (every setting equal,
    // and for an https:// service, its ca_file, client_cert and client_key files still holding
    // what they held): its idle connections, TLS sessions, circuit breaker, hedge and retry budgets
    // and latencies, shared from then on by both clients, so that fetches still running on
    // `previous` keep feeding them. A service whose host and port stay keeps its resolved
    // addresses too, whatever else changed. stats() continues previous's counts. `previous` serves
    // on as it did until retire() is called on it; it may be destroyed before or after this one.
    client(executor_type ex, std::vector<service> services, client_options options, client& previous);
    client(client const&) = delete;
    client& operator=(client const&) = delete;
    ~client();

    std::span<service const> services() const noexcept;

    // The index in services() of the service named `name` (names are unique: the constructor
    // throws std::invalid_argument on one given twice); nullopt if there is none.
    std::optional<std::size_t> index_of(std::string_view name) const noexcept;

    // Waits until each service whose host is a name has had its first resolution, so that a
    // fetch can connect from the start (IP literals need none).
    // Completion signature: void(boost::system::error_code). It completes when every first
    // resolution has ended, successful or not: the code is empty if every service has an
    // address; else it is that of the first service (in services() order) without one: its
    // resolver's error (e.g. boost::asio::error::host_not_found), or boost::asio::error::timed_out
    // for a resolution left unanswered for 10 s. The failed ones are tried again in the background
    // (about every second) and fetches to them fail as error_kind::connect until one succeeds.
    // Executor: the handler runs on its associated executor, by default the client's; it never
    // runs inside this call, even when nothing is left to wait for.
    // Per-operation cancellation: terminal; it then completes with boost::asio::error::
    // operation_aborted, and the resolutions go on. Destroying the client completes it so too:
    // the client need not outlive the operation.
    // Thread safety: as the client's (call it on the client's executor); waits may overlap.
    template <class CompletionToken = detail::default_token_t<executor_type>>
    auto async_wait_resolved(CompletionToken&& token = CompletionToken{}) {
        return boost::asio::async_initiate<CompletionToken, void(boost::system::error_code)>(
            [](boost::asio::any_completion_handler<void(boost::system::error_code)> h, client* self) {
                self->initiate_wait_resolved(std::move(h));
            },
            token, this
        );
    }

    // GET a service's URL (`service_index` in services(); index_of() finds one by name).
    // Completion signature: void(fetch_result). Every upstream failure is in the result
    // (`error->kind`, `error->code()`, the message, the status), never an exception or a
    // separate error code, so that every token gives the same information: `use_awaitable` returns
    // the result, `use_future` a std::future of it, a callback is called with it.
    // Arguments: `values` (of the service's placeholders, see service::params) and `context` are
    // used before this returns, and may die then. A placeholder without a value throws
    // std::invalid_argument here, and an index past the end std::out_of_range.
    // Executor: the fetch runs on the client's; the handler runs on its associated executor, by
    // default the client's, and never inside this call.
    // Per-operation cancellation: terminal (e.g. losing an `||` race, or a `within` deadline):
    // the connection in use is closed, never returned to the pool, and the result is
    // error_kind::cancelled (or, if the answer was being read, it finishes in the background:
    // client_options::settle_time).
    // Circuit breaker: with it open the result is error_kind::circuit_open at once, without
    // connecting. It counts as failures every kind but cancelled, circuit_open and a status below
    // 500, and a fetch cancelled at or after its context's deadline (a timeout of the caller's).
    // Lifetime: the client must outlive the operation.
    // Thread safety: as the client's (call it on the client's executor); fetches may overlap.
    // Exceptions: none from the operation but std::bad_alloc, which leaves the executor's run().
    template <class CompletionToken = detail::default_token_t<executor_type>>
    auto async_fetch(std::size_t service_index, CompletionToken&& token = CompletionToken{}) {
        return async_fetch(service_index, {}, fetch_context{}, std::forward<CompletionToken>(token));
    }
    template <class CompletionToken = detail::default_token_t<executor_type>>
    auto async_fetch(
        std::size_t service_index, std::span<param const> values, CompletionToken&& token = CompletionToken{}
    ) {
        return async_fetch(service_index, values, fetch_context{}, std::forward<CompletionToken>(token));
    }
    template <class CompletionToken = detail::default_token_t<executor_type>>
    auto async_fetch(
        std::size_t service_index,
        std::span<param const> values,
        fetch_context const& context,
        CompletionToken&& token = CompletionToken{}
    ) {
        return boost::asio::async_initiate<CompletionToken, void(fetch_result)>(
            [](boost::asio::any_completion_handler<void(fetch_result)> h, client* self,
               boost::asio::awaitable<fetch_result> op) {
                self->initiate_fetch(std::move(h), std::move(op));
            },
            token, this, fetch(service_index, values, context)
        );
    }

    // async_fetch() for a coroutine on the client's executor: the same operation and result,
    // without the cost of spawning a coroutine of its own.
    boost::asio::awaitable<fetch_result> fetch(
        std::size_t service_index, std::span<param const> values = {}, fetch_context const& context = {}
    );

    executor_type get_executor() const noexcept;

    // Closes the idle pooled connections (at shutdown).
    void close_idle() noexcept;

    // For a client replaced by `successor` (made with this one as its previous): the services
    // successor did not carry over stop pooling connections; their idle ones are closed now, those
    // of fetches still running once these end. Fetches go on as before.
    void retire(client const& successor) noexcept;

    pool_stats stats() const noexcept;
    breaker_state breaker(std::size_t service_index) const noexcept;
    std::size_t idle_connections(std::size_t service_index) const noexcept;

  private:
    client(executor_type ex, std::vector<service> services, client_options options, client* previous);
    void initiate_wait_resolved(boost::asio::any_completion_handler<void(boost::system::error_code)> handler);
    void initiate_fetch(
        boost::asio::any_completion_handler<void(fetch_result)> handler,
        boost::asio::awaitable<fetch_result> op
    );

    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace fanout
