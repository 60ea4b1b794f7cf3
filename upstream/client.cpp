#include "combinators/launch.hpp"
#include "upstream/address_book.hpp"
#include "upstream/json_validate.hpp"
#include "upstream/policy.hpp"
#include "upstream/pool.hpp"
#include "upstream/request.hpp"
#include "upstream/tls.hpp"
#include "wire/read_message.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <chrono>
#include <fanout/client.hpp>
#include <optional>
#include <random>
#include <string>

namespace fanout {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using boost::system::error_code;
using namespace net::experimental::awaitable_operators;

namespace {

constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

fetch_result cancelled_result() {
    return make_failure(error_kind::cancelled, "cancelled");
}

fetch_result connect_failure(error_code ec, service const& svc) {
    if (ec == net::error::operation_aborted) return cancelled_result();
    return make_failure(error_kind::connect, "cannot connect to " + svc.host_header + ": " + ec.message());
}

fetch_result exchange_failure(error_code ec, client_options const& limits, service const& svc) {
    if (ec == net::error::operation_aborted) return cancelled_result();
    // An alert after the handshake: with TLS 1.3 a server rejects a client certificate only then.
    if (ec.category() == net::error::get_ssl_category())
        return make_failure(error_kind::tls, "TLS with " + svc.host_header + ": " + ec.message());
    if (ec == http::error::body_limit)
        return make_failure(
            error_kind::too_large, "body larger than " + std::to_string(limits.max_body) + " bytes"
        );
    if (ec == http::error::header_limit)
        return make_failure(
            error_kind::protocol, "response head larger than " + std::to_string(limits.max_head) + " bytes"
        );
    if (ec == http::error::buffer_overflow)
        return make_failure(
            error_kind::protocol,
            "chunk-size line or trailer section larger than " + std::to_string(limits.max_head) + " bytes"
        );
    if (ec == http::error::end_of_stream || ec == http::error::partial_message || ec == net::error::eof ||
        ec == net::error::connection_reset || ec == net::error::broken_pipe)
        return make_failure(error_kind::protocol, "connection closed before a complete response");
    return make_failure(error_kind::protocol, "malformed response: " + ec.message());
}

// A pooled connection may have been closed by the upstream while idle; the first exchange on it
// then fails this way before any byte of a response, and a GET can safely be sent again.
bool closed_while_idle(error_code ec) {
    return ec == http::error::end_of_stream || ec == net::error::eof || ec == net::error::connection_reset ||
           ec == net::error::broken_pipe;
}

// More interim answers than this before the final one is an upstream misbehaving.
constexpr int max_interim = 8;

// The exchange on `conn` failed with `ec`: as exchange_failure says, unless its TLS guard stopped
// it or the server had asked for a renegotiation (refused, which an OpenSSL server answers with a
// fatal alert).
fetch_result exchange_failure(
    connection& conn, error_code ec, client_options const& limits, service const& svc
) {
    if (conn.tls && ec != net::error::operation_aborted) {
        auto& guard = conn.tls->next_layer().guard;
        if (guard.stopped() == tls_guard::stop::post_handshake_bytes)
            return make_failure(
                error_kind::tls, "TLS with " + svc.host_header + ": more than " +
                                     std::to_string(tls_guard::max_post_handshake_bytes) +
                                     " bytes of handshake messages after the handshake (session tickets, "
                                     "key updates, renegotiation requests) for one answer"
            );
        if (guard.renegotiation_asked() && ec.category() == net::error::get_ssl_category())
            return make_failure(
                error_kind::tls,
                "TLS with " + svc.host_header + ": renegotiation refused (" + ec.message() + ")"
            );
    }
    return exchange_failure(ec, limits, svc);
}

fetch_result circuit_open_failure(circuit_breaker const& b, std::chrono::steady_clock::time_point now) {
    if (b.state() != breaker_state::open)
        return make_failure(error_kind::circuit_open, "circuit half-open; a probe is under way");
    auto const left = std::chrono::ceil<std::chrono::milliseconds>(b.probe_at() - now).count();
    return make_failure(
        error_kind::circuit_open,
        "circuit open; next try in " + std::to_string(std::max<std::int64_t>(left, 0)) + " ms"
    );
}

// The failure that opened a breaker: the request's own, or a timeout for one cut at its deadline
// (as the breaker took it).
fetch_error opening_failure(fetch_result const& r) {
    if (r.error->kind != error_kind::cancelled) return *r.error;
    auto const ms = std::chrono::duration_cast<std::chrono::milliseconds>(r.elapsed).count();
    return {error_kind::timeout, "no answer within " + std::to_string(ms) + " ms"};
}

// A read that ended at an interim answer: a 101, or one more than max_interim.
fetch_result interim_failure(unsigned status) {
    return make_failure(
        error_kind::protocol, status == 101
                                  ? "upstream switched protocols (101)"
                                  : "more than " + std::to_string(max_interim) + " interim (1xx) answers"
    );
}

// The final answer read whole into `parser`, into `out`: its body when it is a 2xx with JSON, else
// the failure it is. The body is moved, not copied.
void take_answer(response_parser& parser, fetch_result& out) {
    auto const status = parser.status();
    if (status > 299) {
        out = make_failure(
            error_kind::status, "upstream answered " + std::to_string(status) + " " + parser.reason(), status
        );
    } else if (!is_valid_json(parser.body())) {
        out = make_failure(error_kind::invalid_json, "body is not JSON");
    } else {
        out.body = std::move(parser.body());
        out.error.reset();
    }
}

// Interim answers (1xx, e.g. 103 Early Hints) precede the final one (RFC 9110 §15.2): reads up to
// the final answer into conn.parser, or to a 101, or to one interim answer too many. `answered`
// is set once some of an answer arrived. operation_aborted: cancelled, maybe before a read started.
net::awaitable<error_code> read_answer(connection& conn, client_options const& limits, bool& answered) {
    auto& parser = conn.parser;
    error_code ec;
    try {
        for (int interim = 0;; ++interim) {
            expect_answer(conn, limits.max_head, limits.max_body);
            if (conn.tls) {
                ec = co_await wire::read_message(*conn.tls, conn.buffer, *parser, limits.max_head);
                // A close without close_notify, as eof is for plain HTTP: before any byte of
                // the answer, a closed idle connection; after, an answer cut short (a
                // close-delimited body too: its end cannot be told from an attack's).
                if (ec == net::ssl::error::stream_truncated)
                    ec = parser->got_some() || conn.buffer.size() != 0 ? http::error::partial_message
                                                                       : http::error::end_of_stream;
            } else {
                ec = co_await wire::read_message(conn.socket, conn.buffer, *parser, limits.max_head);
            }
            answered = answered || !ec || parser->got_some() || conn.buffer.size() != 0;
            if (ec || parser->status() >= 200 || parser->status() == 101 || interim == max_interim) break;
        }
    } catch (boost::system::system_error const& e) {
        if (e.code() != net::error::operation_aborted) throw;
        ec = net::error::operation_aborted;  // cancelled before a read could start
    }
    co_return ec;
}

}  // namespace

bool valid_field_name(std::string_view name) noexcept {
    constexpr std::string_view tchar = "!#$%&'*+-.^_`|~";
    return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [&](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               tchar.find(c) != std::string_view::npos;
    });
}

std::string_view to_string(breaker_state s) noexcept {
    switch (s) {
        case breaker_state::closed:
            return "closed";
        case breaker_state::open:
            return "open";
        case breaker_state::half_open:
            return "half_open";
    }
    return "unknown";
}

namespace {

// One service's hedging and retry state, in its client (so per event loop).
struct resilience_state {
    latency_histogram latencies;  // of successful requests, for service::hedge_quantile
    request_budget hedges, retries;
};

// What one service's fetches build up, shared by the clients of successive configurations that
// leave the service as it was (see the constructor with a previous client): its TLS side and
// idle connections, its circuit breaker, budgets and latencies.
struct service_state {
    service_state(service const& svc, std::size_t max_idle)
        : tls(svc.tls ? std::make_unique<tls_client>(svc) : nullptr),
          pool(max_idle),
          breaker(svc.breaker_failures, svc.breaker_cooldown) {
        if (svc.hedge_quantile) resilience.latencies.set_quantile(*svc.hedge_quantile);
    }

    std::unique_ptr<tls_client> tls;  // null for http://; before the pool, whose connections use it
    connection_pool pool;
    circuit_breaker breaker;
    resilience_state resilience;
};

// An attempt run by co_spawn that threw: cancelled as it was about to start (Asio's awaitables
// throw then), or anything else, rethrown.
fetch_result cancelled_or_rethrow(std::exception_ptr e) {
    try {
        std::rethrow_exception(e);
    } catch (boost::system::system_error const& se) {
        if (se.code() != net::error::operation_aborted) throw;
    }
    return cancelled_result();
}

}  // namespace

struct client::impl {
    net::any_io_executor ex;
    std::vector<service> services;
    client_options options;
    std::vector<std::string> requests;  // the request head of each service; empty: built per fetch
    std::vector<std::shared_ptr<service_state>> states;  // one per service
    std::minstd_rand jitter{std::random_device{}()};
    // Shared with the clients this one carried over from, and those that carry over from it.
    std::shared_ptr<pool_stats> stats = std::make_shared<pool_stats>();
    std::vector<connection_pool*> pools;  // of `states`, for idle_checks
    std::optional<idle_check> idle_checks;

    // The service's most recently pooled connection if nothing arrived on it while idle (`use`:
    // reused); else null (`use`: retried, the connection closed) or null without any.
    std::unique_ptr<connection> take_pooled(std::size_t index, connection_use& use);
    // The state a service's breaker entered, if it entered one, to options.on_breaker; `failure`:
    // the one that opened it.
    void report(
        std::size_t index, std::optional<breaker_state> entered, fetch_error const* failure = nullptr
    );

    std::optional<address_book> book;  // the services' addresses, names resolved in the background
    net::awaitable<error_code> connect(tcp::socket& sock, std::size_t index);
    // The TLS handshake of a new connection to an https:// service; false: failed, as `out` says.
    // (A result written through `out` keeps it out of the caller's frame, which Asio recycles
    // only up to about 1 KiB.)
    net::awaitable<bool> handshake(std::size_t index, connection& conn, fetch_result& out);
    // One request. `head`: the request's head when the service's target has placeholders; else empty.
    // `settle`: a cancellation after the request was written leaves the connection to settle().
    // `lost_race`: of a hedged pair (see hedge_race::decided); null: a fetch of its own.
    net::awaitable<fetch_result> attempt(
        std::size_t index, std::string head, fetch_headers headers, bool const* lost_race = nullptr
    );
    // A cancelled fetch's connection, its request written: read the rest of the answer in the
    // background within options.settle_time and settle_bytes, then pool it; else close it.
    void settle(std::size_t index, std::unique_ptr<connection> conn);
    void settled(std::size_t index, std::unique_ptr<connection> conn, bool kept);
    net::awaitable<void> settle_in_background(
        std::shared_ptr<bool> client_alive,
        std::size_t index,
        std::unique_ptr<connection> conn,
        std::chrono::milliseconds time,
        std::size_t max_head,
        std::uint64_t max_body
    );
    std::shared_ptr<bool> alive = std::make_shared<bool>(true);  // false once the client is gone
    // A fetch of a service with hedging or retries: one or more attempts.
    net::awaitable<fetch_result> resilient_fetch(std::size_t index, std::string head, fetch_headers headers);
    // An attempt and, after `delay`, a second one unless the first has completed: the first success.
    net::awaitable<fetch_result> hedged(
        std::size_t index,
        std::string const& head,
        fetch_headers const& headers,
        std::chrono::steady_clock::duration delay,
        fetch_attempts& attempts
    );
    // The second request of a hedged pair, sent after `delay` when the budget allows.
    net::awaitable<fetch_result> hedge(
        std::size_t index,
        std::string const& head,
        fetch_headers const& headers,
        std::chrono::steady_clock::duration delay,
        hedge_race& race
    );
};

std::unique_ptr<connection> client::impl::take_pooled(std::size_t index, connection_use& use) {
    auto conn = states[index]->pool.take();
    if (!conn) return nullptr;
    if (idle_checks->quiet(*conn, pools)) {
        ++stats->reused;
        use = connection_use::reused;
        return conn;
    }
    ++stats->retried;
    use = connection_use::retried;
    return nullptr;
}

void client::impl::report(
    std::size_t index, std::optional<breaker_state> entered, fetch_error const* failure
) {
    if (!entered || !options.on_breaker) return;
    breaker_change change{index, *entered};
    if (*entered == breaker_state::open) {
        change.failure = failure;
        change.failures = states[index]->breaker.opened_after();
    }
    options.on_breaker(change);
}

net::awaitable<error_code> client::impl::connect(tcp::socket& sock, std::size_t index) {
    auto ec = co_await book->connect(sock, index);
    if (!ec) sock.set_option(tcp::no_delay(true), ec);
    co_return ec;
}

net::awaitable<bool> client::impl::handshake(std::size_t index, connection& conn, fetch_result& out) {
    auto& side = *states[index]->tls;
    conn.tls = side.wrap(conn.socket);
    auto& guard = conn.tls->next_layer().guard;
    auto const timeout = side.handshake_timeout();
    guard.start_handshake(std::chrono::steady_clock::now() + timeout);
    // The timer stops a server that sends nothing; the guard, one that never stops sending.
    net::steady_timer timer{ex, timeout};
    auto handshake_or_timer = net::experimental::make_parallel_group(
        conn.tls->async_handshake(net::ssl::stream_base::client, net::deferred),
        timer.async_wait(net::deferred)
    );
    auto [order, ec, timer_ec] =
        co_await handshake_or_timer.async_wait(net::experimental::wait_for_one(), net::use_awaitable);
    auto const stopped = guard.stopped();
    guard.end_handshake();
    if (ec) {
        auto const& svc = services[index];
        if (stopped == tls_guard::stop::handshake_time || (order[0] == 1 && !timer_ec))
            out = make_failure(
                error_kind::timeout, "TLS handshake with " + svc.host_header + " not done within " +
                                         std::to_string(timeout.count()) + " ms"
            );
        else if (stopped == tls_guard::stop::handshake_bytes)
            out = make_failure(
                error_kind::tls, "TLS with " + svc.host_header + ": handshake larger than " +
                                     std::to_string(tls_guard::max_handshake_bytes) + " bytes"
            );
        // Only what TLS itself refused is `tls`; a connection reset or closed mid-handshake is a
        // failure to connect (nothing was sent: a GET may be sent again).
        else if (ec.category() == net::error::get_ssl_category())
            out = make_failure(
                error_kind::tls, "TLS with " + svc.host_header + ": " + side.why_failed(*conn.tls, ec)
            );
        else if (ec == net::ssl::error::stream_truncated)
            out = make_failure(
                error_kind::connect,
                "cannot connect to " + svc.host_header + ": closed during the TLS handshake"
            );
        else
            out = connect_failure(ec, svc);
        co_return false;
    }
    bool const resumed = tls_client::resumed(*conn.tls);
    ++(resumed ? stats->tls_resumed : stats->tls_full);
    if (options.on_tls_handshake) options.on_tls_handshake(index, resumed);
    co_return true;
}

// g++ 12 takes Asio's frame allocation (aligned_alloc, released by free) for a mismatched new and
// delete in this coroutine's ramp: a false positive.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
net::awaitable<fetch_result> client::impl::attempt(
    std::size_t index, std::string head, fetch_headers headers, bool const* lost_race
) {
    fetch_result out;
    // Cancelled before it began (its fetch's sibling failed at once): no request, no admission.
    if ((co_await net::this_coro::cancellation_state).cancelled() != net::cancellation_type::none) {
        out = cancelled_result();
        co_return out;
    }
    auto const start = std::chrono::steady_clock::now();
    auto use = connection_use::none;
    auto const& svc = services[index];
    bool probe = false;
    bool answered = false;  // some of an answer arrived (out is replaced whole by a failure)
    auto& breaker = states[index]->breaker;
    if (svc.breaker_failures) {
        auto const admission = breaker.admit(start);
        report(index, admission.entered);
        if (!admission.admitted) {
            out = circuit_open_failure(breaker, start);
            out.attempts.refused = true;
            co_return out;
        }
        probe = admission.probe;
    }
    try {
        for (int attempt = 0;; ++attempt) {
            std::unique_ptr<connection> conn;
            if (attempt == 0) conn = take_pooled(index, use);
            bool const reused = conn != nullptr;
            if (!reused) {
                conn = std::make_unique<connection>(ex);
                if (auto ec = co_await connect(conn->socket, index)) {
                    out = book->size(index) == 0 && ec != net::error::operation_aborted
                              ? make_failure(error_kind::connect, book->why_none(index))
                              : connect_failure(ec, svc);
                    break;
                }
                ++stats->opened;
                if (use == connection_use::none) use = connection_use::opened;
                if (states[index]->tls && !co_await handshake(index, *conn, out)) break;
            }

            headers.write(
                conn->request, head.empty() ? requests[index] : head, options.deadline_header,
                std::chrono::steady_clock::now()
            );
            if (conn->tls) conn->tls->next_layer().guard.expect_answer();
            error_code wec;
            if (conn->tls)
                std::tie(wec, std::ignore) =
                    co_await net::async_write(*conn->tls, net::buffer(conn->request), use_tuple);
            else
                std::tie(wec, std::ignore) =
                    co_await net::async_write(conn->socket, net::buffer(conn->request), use_tuple);
            if (wec && reused && closed_while_idle(wec)) {
                ++stats->retried;
                use = connection_use::retried;
                continue;
            }
            if (wec) {
                out = exchange_failure(*conn, wec, options, svc);
                break;
            }

            auto const rec = co_await read_answer(*conn, options, answered);
            auto& parser = conn->parser;
            if (rec == net::error::operation_aborted) {
                if (!lost_race || !*lost_race) settle(index, std::move(conn));
                out = exchange_failure(rec, options, svc);
                break;
            }
            if (rec && reused && closed_while_idle(rec)) {
                ++stats->retried;
                use = connection_use::retried;
                continue;
            }
            if (rec) {
                out = exchange_failure(*conn, rec, options, svc);
                break;
            }
            if (parser->status() < 200) {
                out = interim_failure(parser->status());
                break;
            }
            take_answer(*parser, out);
            if (out.ok() && svc.hedge_quantile)
                states[index]->resilience.latencies.add(std::chrono::steady_clock::now() - start);

            // Only a connection left exactly between two messages goes back to the pool, and not
            // one whose TLS guard stopped it reading (for good) while the answer completed.
            bool const reusable =
                parser->keep_alive() && conn->buffer.size() == 0 &&
                (!conn->tls || conn->tls->next_layer().guard.stopped() == tls_guard::stop::none);
            parser.reset();
            if (reusable) states[index]->pool.put(conn);
            break;
        }
    } catch (boost::system::system_error const& e) {
        // Cancelled between two operations: the next one refused to start. Upstream failures
        // never get here; they are values.
        if (e.code() != net::error::operation_aborted) throw;
        out = cancelled_result();
    }
    auto const end = std::chrono::steady_clock::now();
    out.elapsed = end - start;
    out.connection = use;
    out.answer_started = answered;
    auto const verdict = judge_request(
        out, lost_race && *lost_race, headers.cause ? headers.cause->reason() : std::nullopt,
        headers.timeout_at, headers.deadline, end
    );
    if (svc.breaker_failures) {
        auto const entered = breaker.record(failed_upstream(out, headers.deadline, end), probe, end);
        if (entered == breaker_state::open) {
            auto const failure = opening_failure(out);
            report(index, entered, &failure);
        } else {
            report(index, entered);
        }
    }
    if (options.on_request)
        options.on_request(
            {index, verdict.outcome, verdict.kind, verdict.reason, out.elapsed, headers.trace.id()}
        );
    co_return out;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

namespace {

// The final answer on `conn` (interim ones skipped), read whole into its parser.
net::awaitable<error_code> read_final(connection& conn, std::size_t max_head, std::uint64_t max_body) {
    for (int interim = 0;; ++interim) {
        auto ec = co_await wire::read_message(conn.socket, conn.buffer, *conn.parser, max_head);
        if (ec || conn.parser->status() >= 200) co_return ec;
        if (conn.parser->status() == 101 || interim == max_interim) co_return http::error::bad_status;
        expect_answer(conn, max_head, max_body);
    }
}

}  // namespace

void client::impl::settle(std::size_t index, std::unique_ptr<connection> conn) {
    auto& parser = conn->parser;
    auto const max_body = std::min<std::uint64_t>(options.max_body, options.settle_bytes);
    // A TLS connection is closed: its stream is not left half-read to be resumed elsewhere.
    bool may = options.settle_time.count() > 0 && parser.has_value() && !conn->tls;
    if (may && !parser->is_header_done()) {
        parser->body_limit(max_body);
    } else if (may) {
        auto const left = parser->content_length_remaining();
        may = left && *left <= options.settle_bytes;
    }
    if (!may) return settled(index, std::move(conn), false);
    net::co_spawn(
        ex,
        settle_in_background(alive, index, std::move(conn), options.settle_time, options.max_head, max_body),
        net::detached
    );
}

// Touches the client only if it still exists (`alive`): the timer bounds how long it outlives it.
net::awaitable<void> client::impl::settle_in_background(
    std::shared_ptr<bool> client_alive,
    std::size_t index,
    std::unique_ptr<connection> conn,
    std::chrono::milliseconds time,
    std::size_t max_head,
    std::uint64_t max_body
) {
    net::steady_timer timer{conn->socket.get_executor(), time};
    auto done = co_await (read_final(*conn, max_head, max_body) || timer.async_wait(use_tuple));
    bool const kept =
        done.index() == 0 && !std::get<0>(done) && conn->parser->keep_alive() && conn->buffer.size() == 0;
    conn->parser.reset();
    if (*client_alive) settled(index, std::move(conn), kept);
}

void client::impl::settled(std::size_t index, std::unique_ptr<connection> conn, bool kept) {
    kept = kept && states[index]->pool.put(conn);
    ++(kept ? stats->settled_kept : stats->settled_closed);
    if (options.on_cancelled_connection) options.on_cancelled_connection(index, kept);
}

net::awaitable<fetch_result> client::impl::resilient_fetch(
    std::size_t index, std::string head, fetch_headers headers
) {
    using clock = std::chrono::steady_clock;
    auto const& svc = services[index];
    auto& state = states[index]->resilience;
    auto const start = clock::now();
    if (hedges(svc)) state.hedges.deposit(svc.hedge_budget);
    if (svc.max_retries) state.retries.deposit(svc.retry_budget);
    fetch_result out;
    fetch_attempts attempts;
    try {
        for (;;) {
            bool const closed =
                !svc.breaker_failures || states[index]->breaker.state() == breaker_state::closed;
            auto const delay = hedge_delay(svc, state.latencies, closed, headers.deadline, clock::now());
            fetch_result next;
            if (delay)
                next = co_await hedged(index, head, headers, *delay, attempts);
            else
                next = co_await attempt(index, head, headers);
            attempts.refused = next.attempts.refused;
            // A retry refused by the circuit that the requests before it opened: not sent, and the
            // fetch failed as they did, which says why (circuit_open would not).
            if (attempts.refused && attempts.retries) {
                --attempts.retries;
                break;
            }
            out = std::move(next);
            if (!retryable(out)) break;
            auto const now = clock::now();
            auto const backoff = retry_backoff(
                svc, out, attempts.retries, std::uniform_real_distribution(0.5, 1.5)(jitter),
                headers.deadline, now
            );
            if (!backoff) break;
            if ((co_await net::this_coro::cancellation_state).cancelled() != net::cancellation_type::none)
                throw boost::system::system_error(net::error::operation_aborted);
            if (!state.retries.take(svc.retry_min_per_s, now)) {
                attempts.over_budget = true;
                break;
            }
            ++attempts.retries;
            net::steady_timer timer{ex, *backoff};
            co_await timer.async_wait(net::use_awaitable);
        }
    } catch (boost::system::system_error const& e) {
        if (e.code() != net::error::operation_aborted) throw;
        out = cancelled_result();
    }
    out.elapsed = clock::now() - start;
    out.attempts = attempts;
    co_return out;
}

net::awaitable<fetch_result> client::impl::hedged(
    std::size_t index,
    std::string const& head,
    fetch_headers const& headers,
    std::chrono::steady_clock::duration delay,
    fetch_attempts& attempts
) {
    hedge_race race;
    auto const pair_start = std::chrono::steady_clock::now();
    auto [order, e0, first, e1, second] =
        co_await net::experimental::make_parallel_group(
            net::co_spawn(ex, attempt(index, head, headers, &race.decided), net::deferred),
            net::co_spawn(ex, hedge(index, head, headers, delay, race), net::deferred)
        )
            .async_wait(hedge_race::first_success{&race}, net::use_awaitable);
    if (e0) first = cancelled_or_rethrow(e0);
    if (e1) second = cancelled_or_rethrow(e1);
    attempts.hedged = attempts.hedged || race.sent;
    attempts.over_budget = attempts.over_budget || race.declined;
    if (race.sent && second.ok() && (order[0] == 1 || !first.ok())) {
        attempts.hedge_won = true;
        // The first request took at least this long: without it the slow answers the hedge cut
        // short would leave the histogram, and the quantile would drift down.
        if (!first.ok() && services[index].hedge_quantile)
            states[index]->resilience.latencies.add(std::chrono::steady_clock::now() - pair_start);
        co_return second;
    }
    co_return first;
}

net::awaitable<fetch_result> client::impl::hedge(
    std::size_t index,
    std::string const& head,
    fetch_headers const& headers,
    std::chrono::steady_clock::duration delay,
    hedge_race& race
) {
    net::steady_timer timer{ex, delay};
    auto [ec] = co_await timer.async_wait(use_tuple);
    // The first request may have won while the timer's completion waited to run.
    auto const cs = co_await net::this_coro::cancellation_state;
    if (ec || cs.cancelled() != net::cancellation_type::none) co_return cancelled_result();
    if (!states[index]->resilience.hedges.take(0, std::chrono::steady_clock::now())) {
        race.declined = true;
        co_return make_failure(error_kind::cancelled, "hedge over budget");
    }
    race.sent = true;
    co_return co_await attempt(index, head, headers, &race.decided);
}

namespace {

// Throws std::invalid_argument for settings no client takes.
void check(client_options const& options, std::vector<service> const& services) {
    if (!options.deadline_header.empty() && !valid_field_name(options.deadline_header))
        throw std::invalid_argument("deadline header '" + options.deadline_header + "' is not a field name");
    for (std::size_t i = 0; i < services.size(); ++i) {
        auto const& svc = services[i];
        auto bad = [&](std::string const& what) {
            return std::invalid_argument("service '" + svc.name + "': " + what);
        };
        if (svc.hedge_quantile && !(*svc.hedge_quantile > 0 && *svc.hedge_quantile < 1))
            throw bad("hedge_quantile must be above 0 and below 1");
        if (!(svc.hedge_budget >= 0 && svc.hedge_budget <= 1)) throw bad("hedge_budget must be from 0 to 1");
        if (!(svc.retry_budget >= 0 && svc.retry_budget <= 1)) throw bad("retry_budget must be from 0 to 1");
        if (svc.max_retries > 10) throw bad("max_retries must be at most 10");
        for (std::size_t j = 0; j < i; ++j)
            if (svc.name == services[j].name)
                throw std::invalid_argument("service '" + svc.name + "' given twice");
    }
}

}  // namespace

client::client(net::any_io_executor ex, std::vector<service> services, client_options options)
    : client(std::move(ex), std::move(services), std::move(options), nullptr) {
}

client::client(
    net::any_io_executor ex, std::vector<service> services, client_options options, client& previous
)
    : client(std::move(ex), std::move(services), std::move(options), &previous) {
}

client::client(
    net::any_io_executor ex, std::vector<service> services, client_options options, client* previous
)
    : impl_(std::make_unique<impl>()) {
    check(options, services);
    impl_->ex = std::move(ex);
    impl_->options = options;
    auto* before = previous ? previous->impl_.get() : nullptr;
    if (before) impl_->stats = before->stats;
    for (auto const& svc : services)
        impl_->requests.push_back(svc.params.empty() ? request_head(svc, svc.target) : std::string());
    for (auto const& svc : services) {
        std::shared_ptr<service_state> state;
        if (auto i = previous ? previous->index_of(svc.name) : std::nullopt;
            i && before->services[*i] == svc && (!svc.tls || before->states[*i]->tls->same_files(svc))) {
            state = before->states[*i];
            state->pool.max_idle(options.max_idle_per_service);
        } else {
            state = std::make_shared<service_state>(svc, options.max_idle_per_service);
        }
        impl_->pools.push_back(&state->pool);
        impl_->states.push_back(std::move(state));
    }
    impl_->idle_checks.emplace(impl_->ex);
    impl_->services = std::move(services);
    impl_->book.emplace(
        impl_->ex, impl_->services, options.resolve, address_book_options{.refresh = options.dns_refresh}
    );
    if (!before) return;
    // A host and port that stay keep their addresses, whatever else changed: no fetch waits for
    // (or fails for want of) a resolution that the previous configuration had done already.
    for (std::size_t i = 0; i < impl_->services.size(); ++i) {
        auto const& svc = impl_->services[i];
        for (std::size_t j = 0; j < before->services.size(); ++j)
            if (before->services[j].host == svc.host && before->services[j].port == svc.port) {
                impl_->book->carry(i, *before->book, j);
                break;
            }
    }
}

void client::retire(client const& successor) noexcept {
    auto const& kept = successor.impl_->states;
    for (auto& state : impl_->states)
        if (std::find(kept.begin(), kept.end(), state) == kept.end()) state->pool.close();
}

client::~client() {
    *impl_->alive = false;  // connections still settling are closed, not pooled
}

client::executor_type client::get_executor() const noexcept {
    return impl_->ex;
}

std::span<service const> client::services() const noexcept {
    return impl_->services;
}

std::optional<std::size_t> client::index_of(std::string_view name) const noexcept {
    auto const& all = impl_->services;
    auto it = std::find_if(all.begin(), all.end(), [&](service const& s) { return s.name == name; });
    if (it == all.end()) return std::nullopt;
    return static_cast<std::size_t>(it - all.begin());
}

void client::initiate_wait_resolved(net::any_completion_handler<void(error_code)> handler) {
    detail::launch(
        impl_->ex, impl_->book->first_resolutions(), std::move(handler),
        [](auto h, std::exception_ptr e, error_code ec) {
            if (e) std::rethrow_exception(e);  // std::bad_alloc: nothing else is thrown
            std::move(h)(ec);
        }
    );
}

void client::initiate_fetch(
    net::any_completion_handler<void(fetch_result)> handler, net::awaitable<fetch_result> op
) {
    detail::launch(
        impl_->ex, std::move(op), std::move(handler),
        [](auto h, std::exception_ptr e, fetch_result r) {
            if (e) std::rethrow_exception(e);  // std::bad_alloc: upstream failures are in the result
            std::move(h)(std::move(r));
        }
    );
}

net::awaitable<fetch_result> client::fetch(
    std::size_t service_index, std::span<param const> values, fetch_context const& context
) {
    if (service_index >= impl_->services.size())
        throw std::out_of_range(
            "no service " + std::to_string(service_index) + " (the client has " +
            std::to_string(impl_->services.size()) + ")"
        );
    auto const& svc = impl_->services[service_index];
    // Built now, so that the values and the context need not outlive this call.
    std::string head;
    if (!context.target.empty())
        head = request_head(svc, context.target);
    else if (!svc.params.empty() || !context.headers.empty())
        head = request_head(svc, expand_target(svc, values));
    head += context.headers;
    fetch_headers headers{
        context.deadline, context.trace && well_formed(*context.trace) ? *context.trace : trace_context{},
        context.cause, context.timeout_at};
    // A service without hedging or retries: one attempt, with no frame around it.
    if (svc.max_retries || hedges(svc))
        return impl_->resilient_fetch(service_index, std::move(head), std::move(headers));
    return impl_->attempt(service_index, std::move(head), std::move(headers));
}

void client::close_idle() noexcept {
    for (auto& state : impl_->states) state->pool.clear();
}

pool_stats client::stats() const noexcept {
    return *impl_->stats;
}

breaker_state client::breaker(std::size_t service_index) const noexcept {
    return impl_->states[service_index]->breaker.state();
}

std::size_t client::idle_connections(std::size_t service_index) const noexcept {
    return impl_->states[service_index]->pool.idle();
}

}  // namespace fanout
