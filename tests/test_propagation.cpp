// What a request passes on to its upstreams: the time left of its deadline, and its trace context.

#include "server/command_line.hpp"
#include "tests/support.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>

#include <array>
#include <fanout/aggregator.hpp>
#include <fanout/trace.hpp>
#include <set>

using namespace fanout;
using namespace fanout::test;

namespace {

constexpr std::string_view traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
constexpr std::string_view trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";

long header_ms(aggregate_answer const& a, std::string_view service = "echo") {
    auto v = echoed_header(a, "x-request-timeout-ms", service);
    return v.empty() ? -1 : std::stol(v);
}

// The trace id of a traceparent that fanout sent, after checking its form.
std::string sent_trace_id(std::string const& tp) {
    BOOST_TEST_REQUIRE(tp.size() == 55u, tp);
    BOOST_TEST(fanout::parse_trace_context(tp).has_value(), tp);
    BOOST_TEST(tp.substr(0, 3) == "00-");
    return tp.substr(3, 32);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(test_propagation)

BOOST_AUTO_TEST_CASE(the_deadline_bound_endpoints_send_the_time_left) {
    echo_upstream echo;
    harness h{{}, {}, {fanout::make_service("echo", echo.url("/e"))}};
    for (auto path : {"/api/aggregate/channel-with-context-timeout", "/api/aggregate/errgroup"}) {
        auto a = get(h.port(), std::string(path) + "?timeout_ms=8000");
        BOOST_TEST_REQUIRE(a.status == 200u, path);
        auto ms = header_ms(a);
        // Sent at once: most of the 8 s are left, however slow the build (the upstream answers at
        // once, so the deadline costs no time; the arithmetic to the millisecond: test_policy).
        BOOST_TEST(ms <= 8000, path << ": " << ms);
        BOOST_TEST(ms > 4000, path << ": " << ms);
    }
    // The wait-for-all endpoints have no deadline to pass on.
    for (auto path : {"/api/aggregate/wg", "/api/aggregate/channel"}) {
        auto a = get(h.port(), path);
        BOOST_TEST_REQUIRE(a.status == 200u, path);
        BOOST_TEST(header_ms(a) == -1, path);
    }
}

BOOST_AUTO_TEST_CASE(a_service_timeout_sooner_than_the_deadline_is_the_one_sent) {
    echo_upstream echo;
    auto svc = fanout::make_service("echo", echo.url("/e"));
    svc.timeout = std::chrono::milliseconds(250);
    harness h{{}, {}, {svc}};
    auto a = get(h.port(), "/api/aggregate/channel-with-context-timeout?timeout_ms=5000");
    BOOST_TEST_REQUIRE(a.status == 200u);
    BOOST_TEST(header_ms(a) <= 250);
    BOOST_TEST(header_ms(a) >= 1);
}

BOOST_AUTO_TEST_CASE(an_incoming_deadline_shortens_the_request_s) {
    echo_upstream echo;
    harness h{{sim("hung", fanout::sim_behaviour::hang)}, {}, {fanout::make_service("echo", echo.url("/e"))}};
    // The smallest of the header and ?timeout_ms= wins, whichever it is.
    auto a =
        get(h.port(), "/api/aggregate/channel-with-context-timeout?timeout_ms=5000", 10s,
            {{"X-Request-Timeout-Ms", "300"}});
    BOOST_TEST(a.status == 200u);
    BOOST_TEST(header_ms(a) <= 300);
    BOOST_TEST(a.took < 3000ms);  // not the 5 s asked in the query
    auto const& hung = a.body.at("errors").at("hung");
    BOOST_TEST(hung.at("kind").as_string() == "timeout");
    BOOST_TEST(hung.at("message").as_string() == "no answer within 300 ms");

    auto b =
        get(h.port(), "/api/aggregate/channel-with-context-timeout?timeout_ms=200", 10s,
            {{"x-request-timeout-ms", "4000"}});
    BOOST_TEST(b.body.at("errors").at("hung").at("message").as_string() == "no answer within 200 ms");
    BOOST_TEST(header_ms(b) <= 200);
}

BOOST_AUTO_TEST_CASE(an_incoming_deadline_is_capped_like_the_query) {
    echo_upstream echo;
    fanout::options o;
    o.max_timeout = std::chrono::milliseconds(8000);
    harness h{{}, o, {fanout::make_service("echo", echo.url("/e"))}};
    auto a =
        get(h.port(), "/api/aggregate/errgroup?timeout_ms=99999999", 10s,
            {{"X-Request-Timeout-Ms", "99999999999999999999999"}});
    BOOST_TEST_REQUIRE(a.status == 200u);
    BOOST_TEST(header_ms(a) <= 8000);
    BOOST_TEST(header_ms(a) > 4000);
}

BOOST_AUTO_TEST_CASE(a_bad_incoming_deadline_is_a_400_naming_the_header) {
    echo_upstream echo;
    harness h{{}, {}, {fanout::make_service("echo", echo.url("/e"))}};
    for (std::vector<header> bad : std::vector<std::vector<header>>{
             {{"X-Request-Timeout-Ms", "abc"}},
             {{"X-Request-Timeout-Ms", "0"}},
             {{"X-Request-Timeout-Ms", "-5"}},
             {{"X-Request-Timeout-Ms", "1.5"}},
             {{"X-Request-Timeout-Ms", ""}},
             {{"X-Request-Timeout-Ms", "100"}, {"X-Request-Timeout-Ms", "200"}},
         }) {
        blocking_client c{h.port()};
        std::string raw = "GET /api/aggregate/errgroup HTTP/1.1\r\nHost: 127.0.0.1\r\n";
        for (auto const& x : bad) raw += x.name + ": " + x.value + "\r\n";
        c.send(raw + "\r\n");
        auto res = c.read();
        BOOST_TEST_REQUIRE(res.has_value());
        BOOST_TEST(res->result_int() == 400, bad.front().value);
        BOOST_TEST(
            res->body().find("X-Request-Timeout-Ms must be a positive integer") != std::string::npos,
            res->body()
        );
    }
}

BOOST_AUTO_TEST_CASE(fields_in_a_trailer_or_too_long_are_not_taken) {
    echo_upstream echo;
    harness h{{}, {}, {fanout::make_service("echo", echo.url("/e"))}};
    // A chunked body whose trailer section carries them: only the head counts.
    blocking_client c{h.port()};
    c.send(
        "GET /api/aggregate/errgroup?timeout_ms=8000 HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: "
        "chunked\r\n\r\n"
        "0\r\nX-Request-Timeout-Ms: 100\r\ntraceparent: " +
        std::string(traceparent) + "\r\n\r\n"
    );
    auto res = c.read();
    BOOST_TEST_REQUIRE(res.has_value());
    BOOST_TEST_REQUIRE(res->result_int() == 200);
    aggregate_answer a;
    a.body = boost::json::parse(res->body());
    BOOST_TEST(header_ms(a) > 1000);  // the query's 8000 less the time to send it, not the trailer's 100
    BOOST_TEST(sent_trace_id(echoed_header(a, "traceparent")) != trace_id);
    // 65 bytes of a valid number is not cut to 64 of another: it is refused.
    blocking_client d{h.port()};
    d.send(
        "GET /api/aggregate/errgroup HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Request-Timeout-Ms: " +
        std::string(62, '0') + "300\r\n\r\n"
    );
    auto refused = d.read();
    BOOST_TEST_REQUIRE(refused.has_value());
    BOOST_TEST(refused->result_int() == 400);
}

BOOST_AUTO_TEST_CASE(the_header_s_name_is_configured_and_empty_turns_it_off) {
    echo_upstream echo;
    fanout::options o;
    o.deadline_header = "X-Budget-Ms";
    harness h{{}, o, {fanout::make_service("echo", echo.url("/e"))}};
    auto a = get(h.port(), "/api/aggregate/errgroup?timeout_ms=900", 10s, {{"X-Budget-Ms", "400"}});
    BOOST_TEST_REQUIRE(a.status == 200u);
    auto budget = echoed_header(a, "x-budget-ms");
    BOOST_TEST_REQUIRE(!budget.empty());
    BOOST_TEST(std::stol(budget) <= 400);
    BOOST_TEST(header_ms(a) == -1);

    fanout::options off;
    off.deadline_header = "";
    harness h2{{}, off, {fanout::make_service("echo", echo.url("/e"))}};
    auto b = get(h2.port(), "/api/aggregate/errgroup?timeout_ms=900", 10s, {{"X-Request-Timeout-Ms", "abc"}});
    BOOST_TEST(b.status == 200u);  // not read
    BOOST_TEST(header_ms(b) == -1);

    BOOST_CHECK_THROW(
        fanout::parse_command_line(
            3, std::array<char const*, 3>{"fanout", "--deadline-header", "Bad Name"}.data()
        ),
        std::invalid_argument
    );
    for (auto reserved : {"host", "TraceParent", "Content-Length"}) {
        BOOST_CHECK_THROW(
            fanout::parse_command_line(
                3, std::array<char const*, 3>{"fanout", "--deadline-header", reserved}.data()
            ),
            std::invalid_argument
        );
    }
    // An application's options are checked too, by the client.
    boost::asio::io_context ioc;
    fanout::client_options injected;
    injected.deadline_header = "X-Bad\r\nInjected: 1";
    BOOST_CHECK_THROW(fanout::client(ioc.get_executor(), {}, injected), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(traceparent_is_forwarded_with_a_new_parent_id_per_upstream_call) {
    echo_upstream echo;
    harness h{
        {},
        {},
        {fanout::make_service("echo", echo.url("/e")), fanout::make_service("echo2", echo.url("/f"))}};
    for (auto path :
         {"/api/aggregate/wg", "/api/aggregate/channel", "/api/aggregate/channel-with-context-timeout",
          "/api/aggregate/errgroup"}) {
        auto a =
            get(h.port(), path, 10s,
                {{"traceparent", std::string(traceparent)}, {"tracestate", "congo=t61rcWkgMzE"}});
        BOOST_TEST_REQUIRE(a.status == 200u, path);
        auto first = echoed_header(a, "traceparent", "echo");
        auto second = echoed_header(a, "traceparent", "echo2");
        BOOST_TEST(sent_trace_id(first) == trace_id, path);
        BOOST_TEST(sent_trace_id(second) == trace_id, path);
        BOOST_TEST(first.substr(36, 16) != traceparent.substr(36, 16), path);  // fanout's own call
        BOOST_TEST(first.substr(36, 16) != second.substr(36, 16), path);
        BOOST_TEST(first.substr(53) == "01", path);
        BOOST_TEST(echoed_header(a, "tracestate", "echo") == "congo=t61rcWkgMzE", path);
    }
}

BOOST_AUTO_TEST_CASE(a_request_without_a_valid_traceparent_starts_a_new_trace) {
    echo_upstream echo;
    harness h{{}, {}, {fanout::make_service("echo", echo.url("/e"))}};
    std::set<std::string> ids;
    for (std::string bad :
         {"", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",
          "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
          "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
          "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
          "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"}) {
        std::vector<header> headers{{"tracestate", "congo=t61rcWkgMzE"}};
        if (!bad.empty()) headers.push_back({"traceparent", bad});
        auto a = get(h.port(), "/api/aggregate/wg", 10s, headers);
        BOOST_TEST_REQUIRE(a.status == 200u);
        auto id = sent_trace_id(echoed_header(a, "traceparent"));
        BOOST_TEST(id != trace_id, bad);
        BOOST_TEST(echoed_header(a, "tracestate").empty(), bad);  // it belonged to the invalid one
        ids.insert(id);
    }
    BOOST_TEST(ids.size() == 6u);  // a new trace each time
    // Two traceparent lines are not one trace.
    auto two =
        get(h.port(), "/api/aggregate/wg", 10s,
            {{"traceparent", std::string(traceparent)}, {"traceparent", std::string(traceparent)}});
    BOOST_TEST(sent_trace_id(echoed_header(two, "traceparent")) != trace_id);
}

BOOST_AUTO_TEST_CASE(a_tracestate_too_long_or_not_printable_is_dropped) {
    echo_upstream echo;
    harness h{{}, {}, {fanout::make_service("echo", echo.url("/e"))}};
    auto joined =
        get(h.port(), "/api/aggregate/wg", 10s,
            {{"traceparent", std::string(traceparent)}, {"tracestate", "a=1"}, {"tracestate", "b=2"}});
    BOOST_TEST(echoed_header(joined, "tracestate") == "a=1,b=2");
    auto longest = "k=" + std::string(fanout::max_tracestate - 2, 'v');
    auto kept =
        get(h.port(), "/api/aggregate/wg", 10s,
            {{"traceparent", std::string(traceparent)}, {"tracestate", longest}});
    BOOST_TEST(echoed_header(kept, "tracestate") == longest);
    auto dropped =
        get(h.port(), "/api/aggregate/wg", 10s,
            {{"traceparent", std::string(traceparent)}, {"tracestate", longest + "v"}});
    BOOST_TEST(sent_trace_id(echoed_header(dropped, "traceparent")) == trace_id);
    BOOST_TEST(echoed_header(dropped, "tracestate").empty());
}

BOOST_AUTO_TEST_CASE(the_access_and_failure_logs_carry_the_trace_id) {
    captured_events log;
    fanout::options o;
    log.attach(o);
    o.access_log = true;
    harness h{{sim("users"), sim("broken", fanout::sim_behaviour::fail)}, o};
    auto a = get(h.port(), "/api/aggregate/wg", 10s, {{"traceparent", std::string(traceparent)}});
    BOOST_TEST(a.status == 200u);
    auto const expected = R"("trace_id":")" + std::string(trace_id) + '"';
    BOOST_TEST(eventually([&] { return !log.with(R"({"event":"access")").empty(); }));
    auto access = log.with(R"({"event":"access")");
    BOOST_TEST_REQUIRE(access.size() == 1u);
    BOOST_TEST(access.front().find(expected) != std::string::npos, access.front());
    auto failure = log.with(R"({"event":"upstream_failure")");
    BOOST_TEST_REQUIRE(failure.size() == 1u);
    BOOST_TEST(failure.front().find(expected) != std::string::npos, failure.front());
}

BOOST_AUTO_TEST_CASE(a_mounted_aggregator_reads_the_same_fields) {
    echo_upstream echo;
    boost::asio::io_context ioc;
    fanout::options o;
    o.upstreams = {fanout::make_service("echo", echo.url("/e"))};
    fanout::aggregator agg{ioc.get_executor(), o};
    boost::beast::http::request<boost::beast::http::empty_body> req{
        boost::beast::http::verb::get, "/api/aggregate/errgroup?timeout_ms=900", 11};
    req.set("traceparent", traceparent);
    req.set("X-Request-Timeout-Ms", "400");
    auto future = boost::asio::co_spawn(ioc, agg.handle(req), boost::asio::use_future);
    ioc.run();
    auto res = future.get();
    BOOST_TEST_REQUIRE(res.result_int() == 200);
    aggregate_answer a;
    a.body = boost::json::parse(res.body());
    BOOST_TEST(sent_trace_id(echoed_header(a, "traceparent")) == trace_id);
    BOOST_TEST(header_ms(a) <= 400);
    BOOST_TEST(header_ms(a) >= 1);
}

// async_handle takes the fields as handle does: given, or read from a Beast request; without
// them, the query's deadline and a new trace.
BOOST_AUTO_TEST_CASE(async_handle_passes_the_same_fields_on) {
    namespace http = boost::beast::http;
    echo_upstream echo;
    boost::asio::io_context ioc;
    fanout::options o;
    o.upstreams = {fanout::make_service("echo", echo.url("/e"))};
    fanout::aggregator agg{ioc.get_executor(), o};
    std::string const target = "/api/aggregate/errgroup?timeout_ms=8000";
    fanout::request_fields fields;
    fields.deadline = "400";
    fields.traceparent = std::string(traceparent);
    auto given = agg.async_handle(http::verb::get, target, 11, fields, boost::asio::use_future);
    http::request<http::empty_body> req{http::verb::get, target, 11};
    req.set("traceparent", traceparent);
    req.set("X-Request-Timeout-Ms", "300");
    auto read = agg.async_handle(req, boost::asio::use_future);
    auto without = agg.async_handle(http::verb::get, target, 11, boost::asio::use_future);
    ioc.run();
    auto answer = [](std::future<fanout::aggregator::response_type>& f) {
        auto res = f.get();
        BOOST_TEST_REQUIRE(res.result_int() == 200);
        aggregate_answer a;
        a.body = boost::json::parse(res.body());
        return a;
    };
    auto a = answer(given);
    BOOST_TEST(sent_trace_id(echoed_header(a, "traceparent")) == trace_id);
    BOOST_TEST(header_ms(a) <= 400);
    BOOST_TEST(header_ms(a) >= 1);
    auto b = answer(read);
    BOOST_TEST(sent_trace_id(echoed_header(b, "traceparent")) == trace_id);
    BOOST_TEST(header_ms(b) <= 300);
    BOOST_TEST(header_ms(b) >= 1);
    auto c = answer(without);
    BOOST_TEST(sent_trace_id(echoed_header(c, "traceparent")) != trace_id);
    BOOST_TEST(header_ms(c) > 4000);  // 8000 less the time to send it
}

BOOST_AUTO_TEST_CASE(traceparent_parsing_follows_the_w3c_rules) {
    auto ok = fanout::parse_trace_context(traceparent, "a=b");
    BOOST_TEST_REQUIRE(ok.has_value());
    BOOST_TEST(ok->id() == trace_id);
    BOOST_TEST(ok->flags == 1);
    BOOST_TEST(ok->tracestate == "a=b");
    // A later version may append fields; version 00 may not.
    // Only `sampled` is kept of the flags (version 00's only one).
    BOOST_TEST(
        fanout::parse_trace_context("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-what")
            .value()
            .flags == 1
    );
    BOOST_TEST(
        fanout::parse_trace_context("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-fe")
            .value()
            .flags == 0
    );
    BOOST_TEST(!fanout::parse_trace_context("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09what")
                    .has_value());
    BOOST_TEST(
        !fanout::parse_trace_context("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0").has_value()
    );
    BOOST_TEST(
        !fanout::parse_trace_context("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g").has_value()
    );
    BOOST_TEST(
        !fanout::parse_trace_context("00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").has_value()
    );
    BOOST_TEST(!fanout::parse_trace_context(traceparent, "a=\x01").value().tracestate.size());
    auto fresh = fanout::new_trace();
    BOOST_TEST(fresh.id().size() == 32u);
    BOOST_TEST(fresh.flags == 0);  // fanout makes no sampling decision
    auto child = fanout::child_traceparent(fresh);
    BOOST_TEST(fanout::parse_trace_context({child.data(), child.size()}).value().id() == fresh.id());
}

// New ids are lowercase hex (the parser refuses anything else), and every digit takes every value.
BOOST_AUTO_TEST_CASE(new_ids_use_every_hex_digit_in_every_place) {
    std::array<std::array<bool, 16>, 32> seen{};
    for (int i = 0; i < 2000; ++i) {
        auto const t = fanout::new_trace();
        BOOST_TEST_REQUIRE(fanout::well_formed(t));
        auto const child = fanout::child_traceparent(t);
        BOOST_TEST_REQUIRE(fanout::parse_trace_context({child.data(), child.size()}).has_value());
        for (std::size_t j = 0; j < 32; ++j) {
            auto const c = t.id()[j];
            seen[j][c <= '9' ? c - '0' : c - 'a' + 10] = true;
        }
    }
    for (auto const& place : seen)
        BOOST_TEST(std::all_of(place.begin(), place.end(), [](bool b) { return b; }));
}

BOOST_AUTO_TEST_SUITE_END()
