#include "combinators/launch.hpp"
#include "server/access_log.hpp"
#include "server/admin_listener.hpp"
#include "server/connection.hpp"
#include "server/listener.hpp"
#include "server/log.hpp"
#include "server/log_limiter.hpp"
#include "server/loop_engine.hpp"
#include "server/request_parser.hpp"
#include "server/router.hpp"
#include "server/server_error.hpp"
#include "server/stream.hpp"
#include "wire/read_message.hpp"
#include "wire/use_tuple.hpp"
#include "wire/write_now.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/consign.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include <array>
#include <cerrno>
#include <charconv>
#include <fanout/http_server.hpp>
#include <list>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <tuple>

namespace fanout {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using namespace net::experimental::awaitable_operators;
using tcp = net::ip::tcp;
using boost::system::error_code;
using clock = std::chrono::steady_clock;

namespace {

using wire::use_tuple;

double millis(clock::duration d) {
    return std::chrono::duration<double, std::milli>(d).count();
}

// Rejected connections (over --max-connections) lingering at once, per event loop; more get a
// short close (close_after_answer): each lingering one holds a file descriptor for up to linger_time.
constexpr std::size_t max_lingering_rejects = 64;
// At shutdown an idle connection is closed once no byte of a request arrived on it for this long,
// not at once: a client sending requests back to back would find its next one crossing our close,
// and a connection just accepted (maybe from the listen queue) was most likely opened to send one.
constexpr auto idle_close_wait = std::chrono::milliseconds(250);

// Bytes of a request are waiting: in what was read already, or in the socket.
bool request_bytes_pending(tcp::socket& sock, beast::flat_buffer const& buffer) {
    error_code ec;
    return buffer.size() > 0 || (sock.available(ec) > 0 && !ec);
}

}  // namespace

struct session_slot {
    tcp::socket* socket = nullptr;  // closed when the shutdown grace ends
    net::cancellation_signal cancel;
    bool idle = true;        // waiting for the first byte of a request
    bool cancelled = false;  // by shutdown or disconnect: whatever the handler returns is not sent
    fanout::cancel_cause* cause = nullptr;  // of the request whose handler runs in the session
};

// Pipelined requests a session answers before it lets the loop run others.
constexpr int max_answered_at_once = 16;

// Watches the connection for the client going away while a deadline-bound request is handled: a
// wait for readability; EOF or reset then cancels the session, the handler and its fetches with it.
// Bytes that arrive meanwhile are a pipelined request, not a disconnect: the watch just ends.
// Shared with the wait's completion, which may run after the session has ended.
struct disconnect_watch {
    session_slot* slot;
    bool armed = false;
    bool fired = false;
    std::uint64_t generation = 0;  // of the current arm(): an older wait may complete late

    void arm(tcp::socket& sock, std::shared_ptr<disconnect_watch> const& self) {
        armed = true;
        wait(sock, self, ++generation);
    }

    // Readiness is not proof: with several threads running the loop, a readiness event taken before
    // the last request was read can complete a wait started after it. Only a peek tells EOF, reset,
    // bytes, or nothing yet (then the wait starts again).
    static void wait(tcp::socket& sock, std::shared_ptr<disconnect_watch> const& self, std::uint64_t g) {
        sock.async_wait(tcp::socket::wait_read, [self, &sock, g](error_code ec) {
            if (ec || !self->slot || !self->armed || self->generation != g) return;  // gone, or stale
            char byte;
            auto const n = ::recv(sock.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
                wait(sock, self, g);
                return;
            }
            self->armed = false;
            if (n > 0) return;
            self->fired = true;
            if (self->slot->cause) self->slot->cause->set(fanout::cancel_reason::client_gone);
            self->slot->cancelled = true;
            self->slot->cancel.emit(net::cancellation_type::terminal);
        });
    }

    // The wait stays pending until the client sends its next request (or leaves); then, stale, it
    // does nothing. Cancelling it would cost more than letting it be.
    void disarm() { armed = false; }
};

// A wg or channel request's handler, run apart from its session: these patterns have no deadline,
// so when the client leaves, the session ends (its connection slot freed at once) and the handler
// goes on in the background, bounded by the fetches' own limits, --max-background-fetches and the
// shutdown grace. Released once both the handler has completed and the session has let go of it.
struct handler_run {
    explicit handler_run(net::any_io_executor const& ex) : finished(ex, clock::time_point::max()) {}

    std::shared_ptr<loop_config> config;  // the request's, which its plan belongs to
    dispatch request;                     // owned here: the handler reads it until it completes
    net::cancellation_signal cancel;      // the handler's, used by co_spawn until its completion handler
    net::steady_timer finished;           // never expires: cancelled when `answer` is set
    std::optional<response> answer;
    bool held = true;         // by its session, waiting for the answer
    bool done = false;        // its completion handler has run
    bool background = false;  // its client left
    bool cancelled = false;   // over --max-background-fetches, or at the end of the shutdown grace
    fanout::cancel_cause cause;
};

struct http_server::impl : std::enable_shared_from_this<impl> {
    impl(
        executor_type executor, options const& opts, std::shared_ptr<metrics_registry> reg, std::size_t shard
    )
        : ex(std::move(executor)),
          engine(ex, opts, std::move(reg), shard),
          acceptor(ex),
          access(opts),
          drain_timer(ex),
          grace_timer(ex),
          drained(ex, clock::time_point::max()) {}

    executor_type ex;
    loop_engine engine;
    // The configuration new requests take; a request keeps the one it started with (its loop_config).
    options const& current() const { return engine.config()->opts; }
    // The engine's, by their short names.
    std::shared_ptr<metrics_registry>& registry = engine.registry;
    metrics_shard& metrics = engine.metrics;
    std::shared_ptr<spdlog::logger>& log = engine.log;
    log_limiter& log_limit = engine.log_limit;
    tcp::acceptor acceptor;
    std::shared_ptr<admin_listener> admin;  // shard 0's, when options::admin_listen_host is set
    access_log access;                      // as the configuration in use says
    http_date date;
    std::list<session_slot> sessions;   // served and rejected connections alike
    std::size_t rejecting = 0;          // rejected connections lingering
    std::list<handler_run> runs;        // wg and channel handlers whose session waits for them
    std::list<handler_run> background;  // and those whose client left, oldest first
    bool accepting = false;
    bool draining = false;  // the drain delay: serving on, /healthz 503, connections closed after an answer
    bool stopping = false;  // no longer accepting; requests that reached us are still answered
    std::exception_ptr accept_failure;
    net::steady_timer drain_timer;
    net::steady_timer grace_timer;
    net::steady_timer drained;              // never expires: cancelled to wake run() when all is closed
    std::atomic<std::uint64_t> reloads{0};  // numbered by reload(), in any thread
    std::uint64_t installed = 0;            // the number of the reload in use
    std::list<net::cancellation_signal> reload_waits;  // for new host names; cancelled at shutdown
    static net::awaitable<void> switch_to(std::shared_ptr<impl> self, options opts, std::uint64_t number);

    struct slot_release;
    struct run_release;
    struct run_end;
    void release_run(std::list<handler_run>::iterator run);
    void to_background(std::list<handler_run>::iterator run);
    net::awaitable<void> accept();
    void start_session(tcp::socket sock);
    net::awaitable<void> session(tcp::socket sock, std::list<session_slot>::iterator slot);
    net::awaitable<void> reject(tcp::socket sock, std::list<session_slot>::iterator slot);
    net::awaitable<void> serve(tcp::socket& sock, session_slot& slot, phase_deadline& limit);
    net::awaitable<void> serve_requests(tcp::socket& sock, session_slot& slot, phase_deadline& limit);
    net::awaitable<bool> request_arrives(tcp::socket& sock);
    net::awaitable<std::optional<unsigned>> stream(
        tcp::socket& sock,
        phase_deadline& limit,
        loop_config& cfg,
        dispatch const& r,
        bool head_only,
        unsigned version,
        bool keep_alive,
        std::size_t& sent
    );
    void begin_shutdown(std::chrono::milliseconds delay, std::chrono::milliseconds grace);
    void stop_accepting(std::chrono::milliseconds grace);
    void accept_queued();
    void close_idle();
    void cancel_sessions();
    // Channel producers end before their handler, and so before their session; counted all the same,
    // since they use the client.
    bool is_drained() const {
        return stopping && !accepting && sessions.empty() && runs.empty() && background.empty() &&
               engine.stats->channel_producers_live == 0;
    }
    void check_drained();
    static net::awaitable<void> serve_until_drained(std::shared_ptr<impl> self);
};

net::awaitable<void> http_server::impl::accept() {
    auto self = shared_from_this();
    net::steady_timer backoff{ex};
    for (;;) {
        auto [ec, sock] = co_await acceptor.async_accept(use_tuple);
        if (!ec) start_session(std::move(sock));  // even when stopping: a request may be on it
        if (stopping || !acceptor.is_open() || ec == net::error::operation_aborted) break;
        if (ec) {
            // e.g. out of file descriptors: keep serving the connections we have, try again soon.
            if (log_limit.admit(*log, spdlog::level::err, "accept_failed"))
                log->error(R"({{"event":"accept_failed","message":{}}})", json_quote(ec.message()));
            backoff.expires_after(std::chrono::milliseconds(50));
            co_await backoff.async_wait(use_tuple);
        }
    }
    accepting = false;
    check_drained();
}

// A connection's slot holds the cancellation signal its coroutine is bound to, and co_spawn uses
// that signal until the coroutine's completion handler has run, after the body has ended (at once
// if the body never suspended). So the slot is released by the handler, not by the coroutine.
struct http_server::impl::slot_release {
    std::shared_ptr<impl> server;  // empty once moved from
    std::list<session_slot>::iterator slot;
    bool rejected = false;

    slot_release(std::shared_ptr<impl> s, std::list<session_slot>::iterator it, bool r)
        : server(std::move(s)), slot(it), rejected(r) {}
    slot_release(slot_release&&) noexcept = default;
    slot_release& operator=(slot_release&&) = delete;
    ~slot_release() {
        if (!server) return;
        if (rejected) --server->rejecting;
        server->sessions.erase(slot);
        server->check_drained();
    }
};

// As slot_release, for a handler run: its signal lives until the completion handler has run.
struct http_server::impl::run_release {
    std::shared_ptr<impl> server;  // empty once moved from
    std::list<handler_run>::iterator run;

    run_release(std::shared_ptr<impl> s, std::list<handler_run>::iterator it)
        : server(std::move(s)), run(it) {}
    run_release(run_release&&) noexcept = default;
    run_release& operator=(run_release&&) = delete;
    ~run_release() {
        if (!server) return;
        run->done = true;
        server->release_run(run);
    }
};

// The handler's completion: no coroutine of its own around engine.answer (a frame per request).
struct http_server::impl::run_end {
    run_release release;
    void operator()(std::exception_ptr e, response r) {
        auto& run = *release.run;
        run.answer = e ? error_response(500, "internal error") : std::move(r);  // answer() never throws
        run.finished.cancel();
    }
};

void http_server::impl::release_run(std::list<handler_run>::iterator run) {
    if (run->held || !run->done) return;
    if (run->background) {
        if (!run->cancelled) metrics.background_fetches.add(-1);
        background.erase(run);
    } else {
        runs.erase(run);
    }
    check_drained();
}

// The client of a waiting session left: its handler goes on without it. Over the limit (counted
// across the process, enforced on this loop's own), the oldest still running is cancelled, fetches
// and all: under a hung upstream it is the one furthest from any use.
void http_server::impl::to_background(std::list<handler_run>::iterator run) {
    run->held = false;
    if (run->done) {
        release_run(run);
        return;
    }
    run->background = true;
    background.splice(background.end(), runs, run);
    metrics.background_fetches.add(1);
    std::int64_t total = 0;
    for (std::size_t i = 0; i < registry->shard_count(); ++i)
        total += detail::metrics_writer::shard(*registry, i).background_fetches.value();
    if (total <= static_cast<std::int64_t>(current().max_background_fetches)) return;
    for (auto& oldest : background) {
        if (oldest.cancelled) continue;
        oldest.cancelled = true;
        oldest.cause.set(fanout::cancel_reason::client_gone);
        metrics.background_fetches.add(-1);
        metrics.background_cancelled.add();
        oldest.cancel.emit(net::cancellation_type::terminal);
        return;
    }
}

void http_server::impl::start_session(tcp::socket sock) {
    metrics.connections_accepted.add();
    auto slot = sessions.emplace(sessions.end());
    auto const over =
        detail::metrics_writer::open_connections(*registry).fetch_add(1, std::memory_order_relaxed) >=
        current().max_connections;
    if (!over) {
        net::co_spawn(
            ex, session(std::move(sock), slot),
            net::bind_cancellation_slot(
                slot->cancel.slot(),
                net::consign(net::detached, slot_release{shared_from_this(), slot, false})
            )
        );
        return;
    }
    detail::metrics_writer::open_connections(*registry).fetch_sub(1, std::memory_order_relaxed);
    metrics.connections_rejected.add();
    if (!write_rejection(sock)) {  // gone already
        sessions.erase(slot);
        error_code ec;
        sock.close(ec);
        return;
    }
    if (rejecting < max_lingering_rejects) {
        ++rejecting;
        net::co_spawn(
            ex, reject(std::move(sock), slot),
            net::bind_cancellation_slot(
                slot->cancel.slot(), net::consign(net::detached, slot_release{shared_from_this(), slot, true})
            )
        );
        return;
    }
    // Too many lingering at once: a short close instead. What the client sent so far (its request,
    // as a rule) is read and dropped first, so that the close sends a FIN after the 503, not a reset
    // that could destroy it; only a client still sending after that can see a reset.
    sessions.erase(slot);
    close_after_answer(sock);
}

net::awaitable<void> http_server::impl::reject(tcp::socket sock, std::list<session_slot>::iterator slot) {
    // The slot outlives the socket until the completion handler runs: nothing may reach the socket then.
    struct leave {
        session_slot& slot;
        ~leave() { slot.socket = nullptr; }
    } guard{*slot};
    slot->socket = &sock;
    slot->idle = false;
    co_await linger(sock);
    error_code ec;
    sock.close(ec);
}

net::awaitable<void> http_server::impl::session(tcp::socket sock, std::list<session_slot>::iterator slot) {
    struct leave {
        impl& server;
        session_slot& slot;
        ~leave() {
            slot.socket = nullptr;
            detail::metrics_writer::open_connections(*server.registry)
                .fetch_sub(1, std::memory_order_relaxed);
        }
    } guard{*this, *slot};

    slot->socket = &sock;
    error_code ec;
    sock.set_option(tcp::no_delay(true), ec);
    sock.non_blocking(true, ec);  // for wire::write_now, which would otherwise block the loop
    if (ec) co_return;
    phase_deadline limit{sock};
    limit.after(current().idle_timeout);
    co_await (serve(sock, *slot, limit) || limit.watch());
    if (limit.expired())
        metrics.connections_timed_out.add();
    else if (sock.is_open() && !slot->cancelled)
        co_await linger(sock);
    sock.close(ec);
}

// Never throws: it races the watchdog with `||`, which would wait on for the other branch.
net::awaitable<void> http_server::impl::serve(tcp::socket& sock, session_slot& slot, phase_deadline& limit) {
    try {
        co_await serve_requests(sock, slot, limit);
    } catch (std::exception const&) {
        // Cancelled at shutdown between two operations, or a bug: the connection just closes.
    }
}

net::awaitable<void> http_server::impl::serve_requests(
    tcp::socket& sock, session_slot& slot, phase_deadline& limit
) {
    beast::flat_buffer buffer;
    std::string head;                          // reused: its capacity stays
    int answered_at_once = 0;                  // pipelined requests since the session last yielded
    auto const client = access.peer_of(sock);  // once per connection, and only for the access log
    std::shared_ptr<disconnect_watch> watch;   // made on first use
    struct end_watch {
        std::shared_ptr<disconnect_watch>& watch;
        ~end_watch() {
            if (watch) watch->slot = nullptr;
        }
    } end{watch};
    for (;;) {
        if (buffer.size() == 0) {
            slot.idle = true;
            if (!stopping) {
                limit.after(current().idle_timeout);
                // A connection that never sent a byte gets no buffer (many may be open and idle).
                // Once it has one, a read rather than a wait for readability: under keep-alive load
                // the next request is often there already, and a wait changes the epoll
                // registration each time.
                error_code ec;
                if (buffer.capacity() == 0) {
                    std::tie(ec) = co_await sock.async_wait(tcp::socket::wait_read, use_tuple);
                } else {
                    std::size_t n = 0;
                    std::tie(ec, n) =
                        co_await sock.async_read_some(buffer.prepare(wire::read_size), use_tuple);
                    buffer.commit(n);
                }
                // Aborted by the start of a shutdown: a request may have arrived all the same.
                if (ec && (ec != net::error::operation_aborted || !stopping)) co_return;
            }
            if (slot.cancelled) co_return;  // at the end of the shutdown grace
            // Stopping: an idle connection is closed only once no byte of a request is waiting.
            if (stopping && buffer.size() == 0 && !co_await request_arrives(sock)) co_return;
            slot.idle = false;
        }
        // The request's configuration from its first byte to its answer, whatever reloads come.
        auto const cfg = engine.config();
        auto const& opts = cfg->opts;
        // Slowloris: once a request has started, all of it must arrive within the header timeout.
        limit.after(opts.header_timeout);
        request_parser parser;
        parser.deadline_header(opts.deadline_header);
        parser.forwarded(cfg->routes.forwarded_names());
        parser.keep_forwarded_for(access.trusts_forwarded_for());
        parser.header_limit(static_cast<std::uint32_t>(opts.max_request_head));
        parser.body_limit(opts.max_request_body);
        // Usually the whole head is in the buffer already: no read, and no coroutine to call. Nor
        // then the check for cancellation that awaiting one makes: made here (the shutdown grace or
        // a deadline may have ended the session while its last answer was written).
        auto rec = wire::parse_buffered(parser, buffer, opts.max_request_head, /*head_only=*/true);
        if (rec && rec == http::error::need_more) {
            rec =
                co_await wire::read_message(sock, buffer, parser, opts.max_request_head, /*head_only=*/true);
        } else {
            auto const cs = co_await net::this_coro::cancellation_state;
            if (slot.cancelled || cs.cancelled() != net::cancellation_type::none) co_return;
        }
        if (!rec && !parser.is_done()) {
            // A body follows. One that would be refused is refused by now, from its Content-Length.
            if (parser.expects_continue() && buffer.size() == 0) {
                static constexpr std::string_view go_on = "HTTP/1.1 100 Continue\r\n\r\n";
                auto [cec, cn] = co_await net::async_write(sock, net::buffer(go_on), use_tuple);
                if (cec) co_return;
            }
            rec = co_await wire::read_message(sock, buffer, parser, opts.max_request_head);
        }
        if (rec && (is_disconnect(rec) || !sock.is_open())) co_return;  // gone, or closed by a deadline

        auto const start = clock::now();
        limit.clear();  // a handler takes as long as its pattern takes
        metrics.in_flight.add(1);
        struct in_flight_guard {
            metrics_shard& m;
            ~in_flight_guard() { m.in_flight.add(-1); }
        } in_flight{metrics};

        response res;
        bool keep_alive = false;
        unsigned version = 11;
        auto target = endpoint::other;
        std::optional<std::size_t> route;  // the index of the route it matched
        std::string_view route_path;       // and its template
        fanout::trace_context trace;       // an exemplar of the request's duration
        fanout::cancel_cause cause;        // told to the handler, if cancelled, of a deadline-bound request
        struct no_cause {
            session_slot& slot;
            ~no_cause() { slot.cause = nullptr; }
        } forget{slot};
        if (rec) {
            res = read_failure_response(rec, parser, buffer);
        } else {
            keep_alive = parser.keep_alive();
            version = parser.version();
            auto r = match(parser.method(), parser.target(), opts, cfg->routes, parser.fields());
            target = r.target;
            if (r.plan) {
                route = cfg->series_of(r.plan);
                route_path = r.plan->path;
            }
            trace.trace_id = r.trace.trace_id;
            if (r.answer) {
                res = std::move(*r.answer);
            } else if (target == endpoint::healthz) {
                res = draining || stopping ? json_response(503, R"({"status":"draining"})")
                                           : json_response(200, R"({"status":"ok"})");
            } else if (target == endpoint::metrics) {
                res = engine.metrics_page(parser.fields().accept);
            } else if (r.plan->stream) {
                r.cause = slot.cause = &cause;
                if (version == 10) keep_alive = false;  // the body ends with the connection
                if (!watch) watch = std::make_shared<disconnect_watch>(disconnect_watch{&slot});
                watch->arm(sock, watch);
                std::size_t sent = 0;
                auto const status = co_await stream(
                    sock, limit, *cfg, r, parser.method() == http::verb::head, version, keep_alive, sent
                );
                watch->disarm();
                if (!status || watch->fired || slot.cancelled) {
                    if (watch->fired) metrics.client_disconnects[static_cast<std::size_t>(target)].add();
                    co_return;
                }
                metrics.count_request(target, route, *status, clock::now() - start);
                if (access.on())
                    access.write(
                        *log, {client, parser.forwarded_for(), parser.method_string(), parser.target(),
                               target, route_path, *status, sent, clock::now() - start, trace.id()}
                    );
                if (!keep_alive) co_return;
                continue;
            } else if (r.cancel_on_disconnect) {
                r.cause = slot.cause = &cause;
                if (!watch) watch = std::make_shared<disconnect_watch>(disconnect_watch{&slot});
                watch->arm(sock, watch);
                res = co_await engine.answer(*cfg, r);
                watch->disarm();
                if (watch->fired) {
                    metrics.client_disconnects[static_cast<std::size_t>(target)].add();
                    if (log_limit.admit(*log, spdlog::level::info, "client_disconnect", to_string(target)))
                        log->info(
                            R"({{"event":"client_disconnect","endpoint":"{}","route":{},"elapsed_ms":{:.3f},"trace_id":"{}"}})",
                            to_string(target), json_quote(r.plan->path), millis(clock::now() - start),
                            r.trace.id()
                        );
                    co_return;
                }
            } else {
                // wg or channel: the handler runs on its own, so that the session can end without it.
                if (!watch) watch = std::make_shared<disconnect_watch>(disconnect_watch{&slot});
                auto run = runs.emplace(runs.end(), ex);
                run->config = cfg;
                run->request = std::move(r);
                run->request.cause = &run->cause;
                net::co_spawn(
                    ex, engine.answer(*run->config, run->request),
                    net::bind_cancellation_slot(run->cancel.slot(), run_end{{shared_from_this(), run}})
                );
                watch->arm(sock, watch);
                while (!run->answer && !slot.cancelled) co_await run->finished.async_wait(use_tuple);
                watch->disarm();
                if (!run->answer) {
                    if (!watch->fired) {  // the end of the shutdown grace: cancel_sessions() cancels it
                        run->held = false;
                        release_run(run);
                        co_return;
                    }
                    // Not a cancelled request (client_disconnects): counted in background_fetches.
                    if (log_limit.admit(*log, spdlog::level::info, "client_disconnect", to_string(target)))
                        log->info(
                            R"({{"event":"client_disconnect","endpoint":"{}","route":{},"elapsed_ms":{:.3f},"trace_id":"{}","background":true}})",
                            to_string(target), json_quote(run->request.plan->path),
                            millis(clock::now() - start), run->request.trace.id()
                        );
                    to_background(run);
                    co_return;
                }
                res = std::move(*run->answer);
                r = std::move(run->request);  // the handler is done with it
                run->held = false;
                release_run(run);
            }
        }
        // Draining or stopping, a connection ends after its answer, unless more requests are waiting
        // on it: those are answered too, and the last answer says so.
        if ((draining || stopping) && !request_bytes_pending(sock, buffer)) keep_alive = false;
        if (slot.cancelled) co_return;
        limit.after(opts.header_timeout);  // a client that does not read its answer
        head.clear();
        write_head(head, res, version, keep_alive, date.now());
        // A HEAD answer has the headers a GET would have, and no body.
        auto const body = parser.method() == http::verb::head ? net::const_buffer{} : net::buffer(res.body);
        std::array<net::const_buffer, 2> bytes{net::buffer(head), body};
        error_code wec;
        auto wn = wire::write_now(sock, bytes, wec);
        if (!wec && wn < net::buffer_size(bytes)) {
            auto [rest_ec, rest_n] = co_await net::async_write(sock, wire::rest(bytes, wn), use_tuple);
            wec = rest_ec;
            wn += rest_n;
        }
        if (wec) co_return;
        // Answers sent, only.
        metrics.count_request(target, route, res.status, clock::now() - start, trace.id());
        if (access.on())
            access.write(
                *log, {client, parser.forwarded_for(), parser.method_string(), parser.target(), target,
                       route_path, res.status, wn, clock::now() - start, trace.id()}
            );
        if (!keep_alive) co_return;
        // Pipelined requests answered at once (health, metrics, refusals) never suspend the
        // session now that answers are sent without an operation: it lets the loop run others
        // now and then, so that one client's queue of requests does not hold every other client.
        if (buffer.size() == 0) {
            answered_at_once = 0;
        } else if (++answered_at_once == max_answered_at_once) {
            answered_at_once = 0;
            co_await net::post(net::use_awaitable);
        }
    }
}

// A streamed route: the head at once, then the lines as the backends complete, each written
// the moment it is ready, then the summary. The status sent, or nullopt when the connection must
// close (the client left, or a write failed or timed out).
net::awaitable<std::optional<unsigned>> http_server::impl::stream(
    tcp::socket& sock,
    phase_deadline& limit,
    loop_config& cfg,
    dispatch const& r,
    bool head_only,
    unsigned version,
    bool keep_alive,
    std::size_t& sent
) {
    auto const start = clock::now();
    response res;
    res.content_type = "application/x-ndjson";
    res.streamed = true;
    std::string out;
    write_head(out, res, version, keep_alive, date.now());
    // Each write must be taken by the client within the header timeout; the backends, only by
    // the route's deadline.
    auto const send = [&](std::string const& bytes) -> net::awaitable<error_code> {
        limit.after(cfg.opts.header_timeout);
        auto [ec, n] = co_await net::async_write(sock, net::buffer(bytes), use_tuple);
        sent += n;
        limit.clear();
        co_return ec;
    };
    if (co_await send(out)) co_return std::nullopt;
    if (head_only) co_return 200;

    ndjson_parts parts{ex, *r.plan, start};
    bool const chunked = version != 10;
    auto writer = [&]() -> net::awaitable<void> {
        for (;;) {
            auto text = co_await parts.next();
            out.clear();
            if (chunked && !text.empty()) {
                char size[20];
                out.append(size, std::to_chars(size, size + sizeof size, text.size(), 16).ptr);
                out += "\r\n";
                out += text;
                out += "\r\n";
            } else {
                out = std::move(text);
            }
            if (chunked && parts.ended()) out += "0\r\n\r\n";
            // A failed write throws, so that `&&` cancels the handler and its fetches.
            if (auto ec = co_await send(out)) {
                if (r.cause) r.cause->set(fanout::cancel_reason::client_gone);
                throw boost::system::system_error(ec);
            }
            if (parts.ended()) co_return;
        }
    };
    try {
        co_await (engine.answer(cfg, r, &parts) && writer());
    } catch (std::exception const&) {
        co_return std::nullopt;
    }
    co_return 200;
}

// Wakes an idle session at shutdown; it closes unless a request is arriving (see serve_requests).
void http_server::impl::close_idle() {
    for (auto& s : sessions) {
        error_code ec;
        if (s.idle && s.socket) s.socket->cancel(ec);
    }
}

// Cancelling stops the handler and its fetches; closing the socket stops a read that a peer
// sending without pause would keep going through a cancellation.
void http_server::impl::cancel_sessions() {
    for (auto& s : sessions) {
        s.cancelled = true;
        if (s.cause) s.cause->set(fanout::cancel_reason::shutdown);
        s.cancel.emit(net::cancellation_type::terminal);
        error_code ec;
        if (s.socket) s.socket->close(ec);
    }
    for (auto* list : {&runs, &background}) {
        for (auto& run : *list) {
            if (run.background && !run.cancelled) metrics.background_fetches.add(-1);
            run.cancelled = true;
            run.cause.set(fanout::cancel_reason::shutdown);
            run.cancel.emit(net::cancellation_type::terminal);
        }
    }
}

net::awaitable<bool> http_server::impl::request_arrives(tcp::socket& sock) {
    error_code ec;
    if (sock.available(ec) > 0 && !ec) co_return true;
    if (ec) co_return false;
    net::steady_timer wait{ex};
    wait.expires_after(idle_close_wait);
    co_await (sock.async_wait(tcp::socket::wait_read, use_tuple) || wait.async_wait(use_tuple));
    co_return sock.available(ec) > 0 && !ec;  // 0: nothing yet, or the peer closed
}

// Connections the kernel completed but we did not accept yet may carry requests: closing the
// listener would reset them. They are served like any connection open at shutdown.
void http_server::impl::accept_queued() {
    error_code ec;
    acceptor.non_blocking(true, ec);
    while (!ec) {
        tcp::socket sock{ex};
        acceptor.accept(sock, ec);
        if (!ec) start_session(std::move(sock));
    }
}

void http_server::impl::begin_shutdown(std::chrono::milliseconds delay, std::chrono::milliseconds grace) {
    if (stopping || delay.count() <= 0 || draining) {
        stop_accepting(grace);
        return;
    }
    // Balancers learn from /healthz that we are going, while connections are still accepted.
    draining = true;
    engine.metrics.draining.store(true, std::memory_order_relaxed);
    drain_timer.expires_after(delay);
    drain_timer.async_wait([self = shared_from_this(), grace](error_code ec) {
        if (!ec) self->stop_accepting(grace);
    });
}

void http_server::impl::stop_accepting(std::chrono::milliseconds grace) {
    if (!stopping) {
        stopping = true;
        engine.metrics.draining.store(true, std::memory_order_relaxed);
        drain_timer.cancel();
        if (accepting) accept_queued();
        release_listener(acceptor);
        error_code ec;
        acceptor.close(ec);
        close_idle();
        for (auto& wait : reload_waits) wait.emit(net::cancellation_type::terminal);
    }
    if (grace.count() <= 0) {
        cancel_sessions();
    } else {
        grace_timer.expires_after(grace);
        grace_timer.async_wait([self = shared_from_this()](error_code ec) {
            if (!ec) self->cancel_sessions();
        });
    }
    check_drained();
}

void http_server::impl::check_drained() {
    if (!is_drained()) return;
    grace_timer.cancel();
    engine.config()->client.close_idle();
    if (admin) admin->close();  // it served on through the drain, for the last scrapes
    drained.cancel();
}

http_server::http_server(
    executor_type ex,
    options opts,
    std::shared_ptr<metrics_registry> registry,
    std::size_t shard,
    bool reuse_port
)
    : impl_(std::make_shared<impl>(std::move(ex), opts, std::move(registry), shard)) {
    impl_->acceptor =
        open_listener(impl_->ex, listen_endpoint(opts.listen_host, opts.listen_port), reuse_port);
    if (!opts.admin_listen_host.empty() && shard == 0)
        impl_->admin = std::make_shared<admin_listener>(
            impl_->ex, opts, impl_->registry, impl_->acceptor.local_endpoint()
        );
}

// RAII: a server destroyed while it runs stops at once (as cancel()); whatever still runs holds
// the state it needs, so a run() not yet started by its loop finds it too.
http_server::~http_server() {
    auto ex = impl_->ex;  // before impl_ is moved from: arguments are evaluated in any order
    net::post(ex, [self = std::move(impl_)] { self->stop_accepting(std::chrono::milliseconds(0)); });
}

http_server::executor_type http_server::get_executor() const noexcept {
    return impl_->ex;
}

tcp::endpoint http_server::local_endpoint() const {
    return impl_->acceptor.local_endpoint();
}

void http_server::initiate_run(net::any_completion_handler<void(error_code)> handler) {
    detail::launch(impl_->ex, run(), std::move(handler), [](auto h, std::exception_ptr e) {
        std::move(h)(code_of_exception(e));
    });
}

std::optional<tcp::endpoint> http_server::admin_endpoint() const {
    if (!impl_->admin) return std::nullopt;
    return impl_->admin->local_endpoint();
}

net::awaitable<void> http_server::run() {
    return impl::serve_until_drained(impl_);  // not a coroutine: the state is taken now, not when it starts
}

net::awaitable<void> http_server::impl::serve_until_drained(std::shared_ptr<impl> self) {
    if (!self->stopping) {
        self->accepting = true;
        if (self->admin) self->admin->start();
        // The loop handles its errors itself; anything it throws is a bug: the server stops, and
        // run() reports it once everything is closed.
        net::co_spawn(self->ex, self->accept(), [self](std::exception_ptr e) {
            if (!e) return;
            self->accept_failure = e;
            self->accepting = false;
            try {
                std::rethrow_exception(e);
            } catch (std::exception const& x) {
                self->log->error(R"({{"event":"accept_loop_failed","message":{}}})", json_quote(x.what()));
            } catch (...) {
                self->log->error(R"({"event":"accept_loop_failed","message":"unknown exception"})");
            }
            self->stop_accepting(self->current().shutdown_grace);
        });
    }
    while (!self->is_drained()) {
        co_await self->drained.async_wait(use_tuple);
        auto cs = co_await net::this_coro::cancellation_state;
        if (cs.cancelled() != net::cancellation_type::none) {
            // Our caller cancelled the run: stop at once, and still wait until all is closed.
            co_await net::this_coro::reset_cancellation_state();
            self->stop_accepting(std::chrono::milliseconds(0));
        }
    }
    if (self->accept_failure) std::rethrow_exception(self->accept_failure);
}

void http_server::shutdown(std::chrono::milliseconds grace) {
    net::post(impl_->ex, [self = impl_, grace] { self->stop_accepting(grace); });
}

void http_server::shutdown() {
    net::post(impl_->ex, [self = impl_] {
        self->begin_shutdown(self->current().drain_delay, self->current().shutdown_grace);
    });
}

void http_server::cancel() {
    shutdown(std::chrono::milliseconds(0));
}

net::awaitable<void> http_server::reload(options opts) {
    check_servable(opts);
    auto const number = ++impl_->reloads;
    return impl::switch_to(
        impl_, std::move(opts), number
    );  // not a coroutine: checked now, not when it starts
}

net::awaitable<void> http_server::impl::switch_to(
    std::shared_ptr<impl> self, options opts, std::uint64_t number
) {
    auto const aborted = [] { return boost::system::system_error(net::error::operation_aborted); };
    if (self->stopping) throw aborted();
    // What only a new server can change stays as it is.
    auto const& now = self->current();
    opts.listen_host = now.listen_host;
    opts.listen_port = now.listen_port;
    opts.threads = now.threads;
    opts.admin_listen_host = now.admin_listen_host;
    opts.admin_listen_port = now.admin_listen_port;
    opts.logger = now.logger;
    opts.on_event = now.on_event;
    auto next = self->engine.prepare(std::move(opts));
    // New host names are resolved before the switch, so that no fetch fails for want of an address
    // that the old configuration did not need (given up after 10 s, as at start).
    auto wait = self->reload_waits.emplace(self->reload_waits.end());
    co_await next->client.async_wait_resolved(net::bind_cancellation_slot(wait->slot(), use_tuple));
    self->reload_waits.erase(wait);
    // Stopped or cancelled meanwhile, or overtaken by a later reload that switched first.
    auto const cs = co_await net::this_coro::cancellation_state;
    if (self->stopping || cs.cancelled() != net::cancellation_type::none || number < self->installed)
        throw aborted();
    self->installed = number;
    self->engine.install(std::move(next));
    self->access = access_log{self->current()};
    if (self->admin) self->admin->configure(self->current());
}

void http_server::initiate_reload(
    net::any_completion_handler<void(error_code)> handler, net::awaitable<void> op
) {
    detail::launch(impl_->ex, std::move(op), std::move(handler), [](auto h, std::exception_ptr e) {
        std::move(h)(code_of_exception(e));
    });
}

fanout::pool_stats http_server::upstream_stats() const noexcept {
    return impl_->engine.config()->client.stats();
}

std::size_t http_server::detached_fetches() const noexcept {
    return impl_->engine.stats->channel_producers_live;
}

metrics_registry& http_server::metrics() const noexcept {
    return *impl_->registry;
}

}  // namespace fanout
