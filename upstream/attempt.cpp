// One request to one service, as client::impl runs it: a pooled connection or a new one (connect,
// TLS handshake), the request written, the answer read and judged, the breaker told; and the
// connection of a request cancelled after it was written, settled in the background.

#include "upstream/answer.hpp"
#include "upstream/client_impl.hpp"
#include "upstream/failure.hpp"
#include "wire/use_tuple.hpp"
#include "wire/write_now.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <string>

namespace fanout {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using boost::system::error_code;
using namespace net::experimental::awaitable_operators;

namespace {

using wire::use_tuple;

}  // namespace

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
    if (!ec) sock.non_blocking(true, ec);  // for wire::write_now
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

bool client::impl::admit(
    std::size_t index, std::chrono::steady_clock::time_point now, bool& probe, fetch_result& out
) {
    if (!services[index].breaker_failures) return true;
    auto& breaker = states[index]->breaker;
    auto const admission = breaker.admit(now);
    report(index, admission.entered);
    if (!admission.admitted) {
        out = circuit_open_failure(breaker, now);
        out.attempts.refused = true;
        return false;
    }
    probe = admission.probe;
    return true;
}

void client::impl::record(
    std::size_t index,
    fetch_result& out,
    fetch_headers const& headers,
    bool lost_race,
    bool probe,
    std::chrono::steady_clock::time_point start
) {
    auto const end = std::chrono::steady_clock::now();
    out.elapsed = end - start;
    auto const verdict = judge_request(
        out, lost_race, headers.cause ? headers.cause->reason() : std::nullopt, headers.timeout_at,
        headers.deadline, end
    );
    if (services[index].breaker_failures) {
        auto const entered =
            states[index]->breaker.record(failed_upstream(out, headers.deadline, end), probe, end);
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
    if (!admit(index, start, probe, out)) co_return out;
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

            // Cancelled while connecting: no request is sent (the write below does not suspend,
            // so it would not look).
            if (!reused) {
                auto const cs = co_await net::this_coro::cancellation_state;
                if (cs.cancelled() != net::cancellation_type::none)
                    throw boost::system::system_error(net::error::operation_aborted);
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
            else if (auto const sent = wire::write_now(conn->socket, net::buffer(conn->request), wec);
                     !wec && sent < conn->request.size())
                std::tie(wec, std::ignore) = co_await net::async_write(
                    conn->socket, wire::rest(net::buffer(conn->request), sent), use_tuple
                );
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
            if (rec && rec == net::error::operation_aborted) {
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
    out.connection = use;
    out.answer_started = answered;
    record(index, out, headers, lost_race && *lost_race, probe, start);
    co_return out;
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

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

}  // namespace fanout
