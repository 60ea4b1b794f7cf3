// The client's decisions without sockets or sleeps: the circuit breaker, the budgets of extra
// requests, hedge delays, retry backoffs and the bytes of a request, each driven with time points
// of the test's own.

#include "upstream/policy.hpp"
#include "upstream/request.hpp"

#include <boost/test/unit_test.hpp>

#include <chrono>
#include <string>

using namespace fanout;
using namespace fanout;
using namespace std::chrono_literals;

namespace {

// An arbitrary start: nothing here reads the clock.
time_point const t0 = time_point{} + 1000h;

fetch_result ok() {
    fetch_result r;
    r.body = "{}";
    return r;
}

fetch_result failure(error_kind kind, unsigned status = 0) {
    return make_failure(kind, "x", status);
}

// A breaker that opens after 3 failures, for 5 s.
circuit_breaker three_strikes() {
    return circuit_breaker{3, 5s};
}

// Admits a fetch at `now` and records `failed` for it; what the breaker entered.
std::optional<breaker_state> fetch(circuit_breaker& b, std::optional<bool> failed, time_point now) {
    auto const a = b.admit(now);
    BOOST_TEST_REQUIRE(a.admitted);
    return b.record(failed, a.probe, now);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(test_policy)

BOOST_AUTO_TEST_CASE(breaker_opens_after_consecutive_failures) {
    auto b = three_strikes();
    BOOST_TEST(!fetch(b, true, t0));
    BOOST_TEST(!fetch(b, true, t0));
    BOOST_TEST(!fetch(b, false, t0));  // a success: the count starts again
    BOOST_TEST(!fetch(b, true, t0));
    BOOST_TEST(!fetch(b, std::nullopt, t0));  // no verdict: the count stays
    BOOST_TEST(!fetch(b, true, t0));
    BOOST_TEST((b.state() == breaker_state::closed));
    BOOST_TEST((fetch(b, true, t0 + 1ms) == breaker_state::open));
    BOOST_TEST((b.probe_at() == t0 + 1ms + 5s));
    BOOST_TEST(b.opened_after() == 3u);  // for the log line that says why it opened
}

BOOST_AUTO_TEST_CASE(open_breaker_refuses_until_the_cooldown_then_admits_one_probe) {
    auto b = three_strikes();
    for (int i = 0; i < 3; ++i) fetch(b, true, t0);
    BOOST_TEST((b.state() == breaker_state::open));
    auto refused = b.admit(t0 + 5s - 1ns);
    BOOST_TEST(!refused.admitted);
    BOOST_TEST(!refused.entered);

    auto probe = b.admit(t0 + 5s);
    BOOST_TEST(probe.admitted);
    BOOST_TEST(probe.probe);
    BOOST_TEST((probe.entered == breaker_state::half_open));
    // While the probe is under way, nothing else goes through.
    auto other = b.admit(t0 + 5s + 1ms);
    BOOST_TEST(!other.admitted);
    BOOST_TEST(!other.entered);
    BOOST_TEST((b.state() == breaker_state::half_open));

    BOOST_TEST((b.record(false, true, t0 + 6s) == breaker_state::closed));
    BOOST_TEST(b.admit(t0 + 6s).admitted);
    // Closed again with its count at zero: three more failures to open.
    BOOST_TEST(!fetch(b, true, t0 + 6s));
    BOOST_TEST(!fetch(b, true, t0 + 6s));
    BOOST_TEST((fetch(b, true, t0 + 6s) == breaker_state::open));
}

BOOST_AUTO_TEST_CASE(failed_probe_reopens_for_another_cooldown) {
    auto b = three_strikes();
    for (int i = 0; i < 3; ++i) fetch(b, true, t0);
    BOOST_TEST_REQUIRE(b.admit(t0 + 5s).probe);
    BOOST_TEST((b.record(true, true, t0 + 7s) == breaker_state::open));
    BOOST_TEST(b.opened_after() == 1u);  // the probe
    BOOST_TEST((b.probe_at() == t0 + 12s));
    BOOST_TEST(!b.admit(t0 + 12s - 1ns).admitted);
    BOOST_TEST(b.admit(t0 + 12s).probe);
}

BOOST_AUTO_TEST_CASE(probe_without_a_verdict_lets_the_next_fetch_probe) {
    auto b = three_strikes();
    for (int i = 0; i < 3; ++i) fetch(b, true, t0);
    BOOST_TEST_REQUIRE(b.admit(t0 + 5s).probe);
    BOOST_TEST(!b.record(std::nullopt, true, t0 + 5s));  // e.g. cancelled by a sibling
    BOOST_TEST((b.state() == breaker_state::half_open));
    auto next = b.admit(t0 + 5s + 1ms);
    BOOST_TEST(next.probe);
    BOOST_TEST(!next.entered);
}

BOOST_AUTO_TEST_CASE(probe_that_never_reports_gives_way_after_a_cooldown) {
    auto b = three_strikes();
    for (int i = 0; i < 3; ++i) fetch(b, true, t0);
    BOOST_TEST_REQUIRE(b.admit(t0 + 5s).probe);  // and never recorded (its coroutine destroyed)
    BOOST_TEST(!b.admit(t0 + 10s - 1ns).admitted);
    BOOST_TEST(b.admit(t0 + 10s).probe);
}

BOOST_AUTO_TEST_CASE(what_counts_against_an_upstream) {
    auto const deadline = t0 + 1s;
    BOOST_TEST((failed_upstream(ok(), deadline, t0) == false));
    BOOST_TEST((failed_upstream(failure(error_kind::status, 404), deadline, t0) == false));
    BOOST_TEST((failed_upstream(failure(error_kind::status, 503), deadline, t0) == true));
    for (auto kind :
         {error_kind::connect, error_kind::timeout, error_kind::protocol, error_kind::invalid_json,
          error_kind::too_large, error_kind::tls})
        BOOST_TEST((failed_upstream(failure(kind), deadline, t0) == true));
    BOOST_TEST(!failed_upstream(failure(error_kind::circuit_open), deadline, t0));
    // Cancelled: by a sibling before the deadline says nothing; at or after it, a timeout.
    BOOST_TEST(!failed_upstream(failure(error_kind::cancelled), deadline, deadline - 1ns));
    BOOST_TEST((failed_upstream(failure(error_kind::cancelled), deadline, deadline) == true));
    BOOST_TEST(!failed_upstream(failure(error_kind::cancelled), std::nullopt, deadline));
}

// How a request ended, for the metrics: whoever cancelled it says why; else the times tell.
BOOST_AUTO_TEST_CASE(how_a_request_counts) {
    auto const timeout_at = t0 + 2s, deadline = t0 + 1s;
    auto judge = [&](fetch_result const& r, bool lost, std::optional<cancel_reason> cause, time_point now) {
        return judge_request(r, lost, cause, timeout_at, deadline, now);
    };
    auto const cancelled = failure(error_kind::cancelled);
    BOOST_TEST((judge(ok(), false, std::nullopt, t0).outcome == request_outcome::ok));
    auto const status = judge(failure(error_kind::status, 404), false, cancel_reason::shutdown, t0);
    BOOST_TEST((status.outcome == request_outcome::error && status.kind == error_kind::status));
    auto reason = [&](bool lost, std::optional<cancel_reason> cause, time_point now) {
        auto const v = judge(cancelled, lost, cause, now);
        BOOST_TEST((v.outcome == request_outcome::cancelled));
        return v.reason;
    };
    BOOST_TEST((reason(false, std::nullopt, t0) == cancel_reason::client_gone));
    BOOST_TEST((reason(false, std::nullopt, deadline - 1ns) == cancel_reason::client_gone));
    BOOST_TEST((reason(false, std::nullopt, deadline) == cancel_reason::deadline));
    BOOST_TEST((reason(false, cancel_reason::sibling_failed, deadline) == cancel_reason::sibling_failed));
    BOOST_TEST((reason(true, cancel_reason::sibling_failed, t0) == cancel_reason::hedge_lost));
    // Cut at the service's own timeout (or max_fetch): a failure, whatever the deadline.
    auto const late = judge(cancelled, false, std::nullopt, timeout_at);
    BOOST_TEST((late.outcome == request_outcome::error && late.kind == error_kind::timeout));
    auto const without =
        judge_request(cancelled, false, std::nullopt, std::nullopt, std::nullopt, timeout_at);
    BOOST_TEST((without.outcome == request_outcome::cancelled && without.reason == cancel_reason::client_gone)
    );
}

BOOST_AUTO_TEST_CASE(budget_is_a_share_of_fetches) {
    request_budget b;
    BOOST_TEST(!b.take(0, t0));
    for (int i = 0; i < 3; ++i) b.deposit(0.25);
    BOOST_TEST(!b.take(0, t0));
    b.deposit(0.25);
    BOOST_TEST(b.take(0, t0));
    BOOST_TEST(!b.take(0, t0));
    // At most 100 fetches' worth is saved.
    for (int i = 0; i < 1000; ++i) b.deposit(0.25);
    int taken = 0;
    while (b.take(0, t0)) ++taken;
    BOOST_TEST(taken == 25);
}

BOOST_AUTO_TEST_CASE(budget_has_a_floor_per_second) {
    request_budget b;  // nothing deposited
    BOOST_TEST(b.take(2, t0));
    BOOST_TEST(b.take(2, t0 + 500ms));
    BOOST_TEST(!b.take(2, t0 + 999ms));
    BOOST_TEST(b.take(2, t0 + 1s));  // a new second
    BOOST_TEST(b.take(2, t0 + 1s));
    BOOST_TEST(!b.take(2, t0 + 1500ms));
    // Tokens are used once the floor is spent.
    b.deposit(1);
    BOOST_TEST(b.take(2, t0 + 1500ms));
    BOOST_TEST(!b.take(2, t0 + 1500ms));
}

BOOST_AUTO_TEST_CASE(hedge_delay_from_settings_histogram_breaker_and_deadline) {
    service s;
    latency_histogram latencies;
    BOOST_TEST(!hedge_delay(s, latencies, true, std::nullopt, t0));  // not hedged
    s.hedge_after = 50ms;
    BOOST_TEST((hedge_delay(s, latencies, true, std::nullopt, t0) == duration{50ms}));
    BOOST_TEST(!hedge_delay(s, latencies, false, std::nullopt, t0));  // half-open: the probe alone
    BOOST_TEST((hedge_delay(s, latencies, true, t0 + 51ms, t0) == duration{50ms}));
    BOOST_TEST(!hedge_delay(s, latencies, true, t0 + 50ms, t0));  // due at the deadline: pointless

    // A quantile, once 100 latencies are known, never below hedge_after.
    s.hedge_quantile = 0.5;
    latencies.set_quantile(0.5);
    for (int i = 0; i < 99; ++i) latencies.add(200ms);
    BOOST_TEST((hedge_delay(s, latencies, true, std::nullopt, t0) == duration{50ms}));  // too few yet
    latencies.add(200ms);
    auto const q = hedge_delay(s, latencies, true, std::nullopt, t0);
    BOOST_TEST_REQUIRE(q.has_value());
    BOOST_TEST((*q >= 200ms && *q <= 220ms));  // the upper bound of a bucket 10% wide
    s.hedge_after = 300ms;
    BOOST_TEST((hedge_delay(s, latencies, true, std::nullopt, t0) == duration{300ms}));
    s.hedge_after.reset();
    BOOST_TEST((hedge_delay(s, latencies, true, std::nullopt, t0) == q));
}

BOOST_AUTO_TEST_CASE(retry_backoff_doubles_with_jitter_within_max_retries_and_deadline) {
    service s;
    s.max_retries = 3;
    s.retry_backoff = 10ms;
    auto const refused = failure(error_kind::connect);
    BOOST_TEST((retry_backoff(s, refused, 0, 1.0, std::nullopt, t0) == duration{10ms}));
    BOOST_TEST((retry_backoff(s, refused, 1, 1.0, std::nullopt, t0) == duration{20ms}));
    BOOST_TEST((retry_backoff(s, refused, 2, 0.5, std::nullopt, t0) == duration{20ms}));
    BOOST_TEST((retry_backoff(s, refused, 2, 1.5, std::nullopt, t0) == duration{60ms}));
    BOOST_TEST(!retry_backoff(s, refused, 3, 1.0, std::nullopt, t0));  // max_retries made
    // Never a wait that ends at or past the deadline.
    BOOST_TEST((retry_backoff(s, refused, 0, 1.0, t0 + 11ms, t0) == duration{10ms}));
    BOOST_TEST(!retry_backoff(s, refused, 0, 1.0, t0 + 10ms, t0));
}

BOOST_AUTO_TEST_CASE(only_failures_that_left_nothing_to_answer_are_retried) {
    service s;
    s.max_retries = 3;
    BOOST_TEST(retryable(failure(error_kind::connect)));
    BOOST_TEST(retryable(failure(error_kind::protocol)));
    auto cut = failure(error_kind::protocol);
    cut.answer_started = true;  // the upstream may have acted on it
    BOOST_TEST(!retryable(cut));
    BOOST_TEST(!retry_backoff(s, cut, 0, 1.0, std::nullopt, t0));
    for (auto kind :
         {error_kind::timeout, error_kind::status, error_kind::cancelled, error_kind::circuit_open,
          error_kind::invalid_json, error_kind::tls})
        BOOST_TEST(!retryable(failure(kind)));
    BOOST_TEST(!retryable(ok()));
}

BOOST_AUTO_TEST_CASE(hedge_race_is_decided_by_a_success_or_by_a_lone_first_failure) {
    namespace net = boost::asio;
    auto const cancelled =
        std::make_exception_ptr(boost::system::system_error(net::error::operation_aborted));
    {
        hedge_race race;  // the first request succeeds before the hedge is due
        BOOST_TEST((hedge_race::first_success{&race}(nullptr, ok()) == net::cancellation_type::terminal));
        BOOST_TEST(race.decided);
        BOOST_TEST((hedge_race::first_success{&race}(cancelled, {}) == net::cancellation_type::none));
    }
    {
        hedge_race race;  // it fails before: nothing to wait for
        BOOST_TEST(
            (hedge_race::first_success{&race}(nullptr, failure(error_kind::connect)) ==
             net::cancellation_type::terminal)
        );
        BOOST_TEST(race.decided);
    }
    {
        hedge_race race;  // it fails after the hedge was sent: the hedge may still succeed
        race.sent = true;
        BOOST_TEST(
            (hedge_race::first_success{&race}(nullptr, failure(error_kind::connect)) ==
             net::cancellation_type::none)
        );
        BOOST_TEST(!race.decided);
        BOOST_TEST((hedge_race::first_success{&race}(nullptr, ok()) == net::cancellation_type::none));
    }
    {
        hedge_race race;  // the hedge was declined (over budget): the first request decides alone
        race.declined = true;
        BOOST_TEST(
            (hedge_race::first_success{&race}(nullptr, failure(error_kind::connect)) ==
             net::cancellation_type::none)
        );
        BOOST_TEST(!race.decided);
    }
}

BOOST_AUTO_TEST_CASE(request_bytes_carry_the_time_left_as_of_now) {
    auto s = make_service("users", "http://127.0.0.1:9/u");
    auto const head = request_head(s, "/u?x=1");
    BOOST_TEST(
        head == "GET /u?x=1 HTTP/1.1\r\nHost: 127.0.0.1:9\r\nUser-Agent: fanout/" FANOUT_VERSION
                "\r\nAccept: application/json\r\n"
    );
    std::string out;
    fetch_headers{}.write(out, head, "X-Request-Timeout-Ms", t0);
    BOOST_TEST(out == head + "\r\n");  // no deadline: no header

    fetch_headers timed{t0 + 1500ms, {}};
    timed.write(out, head, "X-Request-Timeout-Ms", t0);
    BOOST_TEST(out == head + "X-Request-Timeout-Ms: 1500\r\n\r\n");
    timed.write(out, head, "X-Request-Timeout-Ms", t0 + 1ms + 500us);
    BOOST_TEST(out == head + "X-Request-Timeout-Ms: 1498\r\n\r\n");  // whole milliseconds, down
    timed.write(out, head, "X-Request-Timeout-Ms", t0 + 2s);
    BOOST_TEST(out == head + "X-Request-Timeout-Ms: 1\r\n\r\n");  // past it: at least 1
    timed.write(out, head, "", t0);
    BOOST_TEST(out == head + "\r\n");  // no header name: not sent
}

BOOST_AUTO_TEST_CASE(request_bytes_carry_the_trace_with_a_new_parent_each_time) {
    auto const head = request_head(make_service("users", "http://127.0.0.1:9/u"), "/u");
    trace_context trace;
    std::string_view const id = "4bf92f3577b34da6a3ce929d0e0e4736";
    std::copy(id.begin(), id.end(), trace.trace_id.begin());
    trace.flags = 1;
    trace.tracestate = "congo=t61rcWkgMzE";
    fetch_headers traced{std::nullopt, trace};
    std::string first, second;
    traced.write(first, head, "X-Request-Timeout-Ms", t0);
    traced.write(second, head, "X-Request-Timeout-Ms", t0);
    auto const prefix = head + "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-";
    std::string_view const suffix = "-01\r\ntracestate: congo=t61rcWkgMzE\r\n\r\n";
    BOOST_TEST(first.starts_with(prefix));
    BOOST_TEST(first.ends_with(suffix));
    BOOST_TEST(first.size() == prefix.size() + 16 + suffix.size());  // the new parent id
    BOOST_TEST(first != second);                                     // each attempt is a call of its own
}

BOOST_AUTO_TEST_SUITE_END()
