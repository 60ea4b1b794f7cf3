// The simulator's bench features: a heavy tail, an outage schedule, the caller's deadline.

#include "tests/support.hpp"

#include <boost/test/unit_test.hpp>

using namespace fanout;
using namespace fanout::test;

namespace {

// One GET on a fresh connection, with optional extra header lines; the status (0: no answer in time).
unsigned status_of(
    std::uint16_t port, std::string const& extra = "", std::chrono::milliseconds timeout = 5s
) {
    blocking_client c{port};
    c.send("GET /s HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra + "\r\n");
    auto res = c.read(timeout);
    return res ? res->result_int() : 0;
}

std::chrono::milliseconds time_of(auto f) {
    auto start = std::chrono::steady_clock::now();
    f();
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(test_simulator)

BOOST_AUTO_TEST_CASE(a_heavy_tail_slows_that_fraction_of_answers) {
    auto s = sim("s");
    s.tail_ratio = 0.5;
    s.tail_latency = 300ms;  // far above a quick answer's time, even under TSan
    sim_runner upstreams{{s}};
    int slow = 0;
    for (int i = 0; i < 20; ++i)
        if (time_of([&] { BOOST_TEST(status_of(upstreams.port(0)) == 200u); }) >= 250ms) ++slow;
    // Binomial(20, 0.5): outside [3, 17] once in 2500 runs; none or all means no tail or no other.
    BOOST_TEST(slow >= 3);
    BOOST_TEST(slow <= 17);
}

BOOST_AUTO_TEST_CASE(an_outage_refuses_then_recovers) {
    auto s = sim("s");
    s.outage_after = 1000ms;  // time for the first request, however slow the build
    s.outage_for = 600ms;
    sim_runner upstreams{{s}};
    auto const port = upstreams.port(0);
    blocking_client open{port};  // open before the outage, reset by it
    BOOST_TEST(status_of(port) == 200u);
    BOOST_TEST_REQUIRE(eventually([&] { return refuses_connections(port); }));  // it began
    bool answered = false;
    try {
        open.send("GET /s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        answered = open.read(1s).has_value();
    } catch (std::exception const&) {  // reset already
    }
    BOOST_TEST(!answered);
    BOOST_TEST(eventually([&] { return !refuses_connections(port); }, 3s));
    BOOST_TEST(status_of(port) == 200u);
}

BOOST_AUTO_TEST_CASE(an_outage_may_hang_instead) {
    auto s = sim("s");
    s.outage_after = 0ms;
    s.outage_for = 60s;
    s.outage_hangs = true;
    sim_runner upstreams{{s}};
    // Until it begins (at once, on the simulator's thread), a request may still be answered.
    BOOST_TEST(eventually([&] { return status_of(upstreams.port(0), "", 300ms) == 0u; }));
    BOOST_TEST(status_of(upstreams.port(0), "", 300ms) == 0u);
    BOOST_TEST(!refuses_connections(upstreams.port(0)));
}

BOOST_AUTO_TEST_CASE(work_past_the_caller_s_budget_is_counted_or_stopped) {
    auto late = sim("late", fanout::sim_behaviour::ok, 150ms);
    late.deadline_header = "X-Request-Timeout-Ms";
    auto honours = late;
    honours.name = "honours";
    honours.honour_deadline = true;
    honours.latency = 1000ms;  // far above the budget, so that the bound below is wide
    sim_runner upstreams{{late, honours}};

    // Not honoured: all 150 ms of work are done, 100 of them past the budget.
    BOOST_TEST(status_of(upstreams.port(0), "X-Request-Timeout-Ms: 50\r\n") == 200u);
    BOOST_TEST(upstreams.counters(0).late_work_ms.load() >= 95u);
    BOOST_TEST(upstreams.counters(0).late_work_ms.load() <= 150u);
    // The work goes on when the caller leaves, and counts.
    {
        blocking_client c{upstreams.port(0)};
        c.send("GET /s HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-Timeout-Ms: 20\r\n\r\n");
    }
    BOOST_TEST(eventually([&] { return upstreams.counters(0).late_work_ms.load() >= 95u + 125u; }));

    // Honoured: the work stops at the budget, answered 504, nothing late.
    auto took =
        time_of([&] { BOOST_TEST(status_of(upstreams.port(1), "X-Request-Timeout-Ms: 40\r\n") == 504u); });
    BOOST_TEST(took < 800ms);  // stopped at 40 ms, not after the 1000 ms of work
    BOOST_TEST(upstreams.counters(1).deadline_stops.load() == 1u);
    BOOST_TEST(upstreams.counters(1).late_work_ms.load() == 0u);
    // A budget larger than the work changes nothing.
    BOOST_TEST(status_of(upstreams.port(1), "X-Request-Timeout-Ms: 3000\r\n") == 200u);
}

BOOST_AUTO_TEST_SUITE_END()
