#include "handlers/handlers.hpp"
#include "server/log.hpp"
#include "server/log_limiter.hpp"
#include "server/metrics_shard.hpp"
#include "server/router.hpp"
#include "tests/support.hpp"
#include "upstream/json_validate.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>

#include <fanout/client.hpp>
#include <fanout/metrics.hpp>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sstream>

using namespace fanout;
using namespace fanout::test;
namespace net = boost::asio;
namespace json = boost::json;

BOOST_AUTO_TEST_SUITE(test_robustness)

// A channel request cancelled a second time while its producers are still finishing must keep
// waiting for them: they use the client, which may be gone once the handler has returned.
BOOST_AUTO_TEST_CASE(a_channel_request_cancelled_twice_outlives_its_producers) {
    net::io_context ioc{1};
    fanout::simulator upstreams{
        ioc.get_executor(), {sim("users", sim_behaviour::hang), sim("orders", sim_behaviour::hang)}};
    upstreams.start();
    auto client = std::make_unique<fanout::client>(
        ioc.get_executor(),
        std::vector{
            fanout::make_service("users", upstreams.url(0)),
            fanout::make_service("orders", upstreams.url(1))},
        fanout::client_options{}
    );
    fanout::handler_context ctx{*client};
    net::cancellation_signal cancel;
    bool done = false;
    std::exception_ptr error;
    std::size_t live_at_completion = 99;
    net::co_spawn(
        ioc, fanout::channel(ctx, fanout::aggregate_request{1000ms}),
        net::bind_cancellation_slot(
            cancel.slot(),
            [&](std::exception_ptr e, fanout::reply) {
                done = true;
                error = e;
                live_at_completion = ctx.stats->channel_producers_live;
            }
        )
    );
    while (upstreams.counters(0).requests + upstreams.counters(1).requests < 2)
        BOOST_TEST_REQUIRE(ioc.run_one_for(10s) > 0u);
    // The second cancellation runs after the handler has resumed from the first and cancelled its
    // producers, before they have delivered.
    net::post(ioc, [&] {
        cancel.emit(net::cancellation_type::terminal);
        net::post(ioc, [&] { cancel.emit(net::cancellation_type::terminal); });
    });
    while (!done) BOOST_TEST_REQUIRE(ioc.run_one_for(10s) > 0u);
    BOOST_TEST(!error);
    BOOST_TEST(live_at_completion == 0u);
    client.reset();
    upstreams.cancel();
    ioc.run_for(50ms);
}

// A pooled connection found closed whose reconnection fails is still a retry.
BOOST_AUTO_TEST_CASE(a_retry_whose_reconnection_fails_is_counted) {
    net::io_context ioc{1};
    fanout::simulator upstreams{ioc.get_executor(), {sim("users")}};
    upstreams.start();
    fanout::client client{ioc.get_executor(), {fanout::make_service("users", upstreams.url(0))}, {}};
    auto fetch = [&] {
        std::optional<fanout::fetch_result> r;
        net::co_spawn(ioc, client.fetch(0), [&](std::exception_ptr, fanout::fetch_result x) {
            r = std::move(x);
        });
        while (!r) BOOST_TEST_REQUIRE(ioc.run_one_for(10s) > 0u);
        return std::move(*r);
    };
    BOOST_TEST_REQUIRE(fetch().ok());
    BOOST_TEST_REQUIRE(client.idle_connections(0) == 1u);
    upstreams.cancel();  // closes the pooled connection and the listener
    ioc.run_for(50ms);
    ioc.restart();
    auto r = fetch();
    BOOST_TEST_REQUIRE(!r.ok());
    BOOST_TEST(to_string(r.error->kind) == "connect");
    BOOST_TEST((r.connection == fanout::connection_use::retried));
    BOOST_TEST(client.stats().retried == 1u);
}

// Answers that were never written (the request was cancelled by shutdown) are not counted.
BOOST_AUTO_TEST_CASE(requests_total_counts_only_answers_sent) {
    harness h{{sim("users", sim_behaviour::hang)}};
    blocking_client c{h.port()};
    c.send_get("/api/aggregate/wg");
    BOOST_TEST_REQUIRE(eventually([&] { return h.counters("users").requests == 1; }));
    for (std::size_t i = 0; i < h.threads(); ++i) h.server(i).cancel();
    BOOST_TEST_REQUIRE(h.wait_stopped());
    BOOST_TEST(c.closed_by_server());
    auto text = h.server().metrics().render();
    BOOST_TEST(
        metric(text, R"(fanout_requests_total{endpoint="wg",route="/api/aggregate/wg",code="500"})") == -1
    );
}

BOOST_AUTO_TEST_CASE(a_metrics_shard_has_one_writer) {
    fanout::options opts;
    opts.listen_port = 0;
    opts.upstreams.push_back(fanout::make_service("users", "http://127.0.0.1:1/users"));
    net::io_context ioc{1};
    auto registry = std::make_shared<fanout::metrics_registry>(std::vector<std::string>{"users"}, 2);
    fanout::http_server first{ioc.get_executor(), opts, registry, 0};
    BOOST_CHECK_THROW((fanout::http_server{ioc.get_executor(), opts, registry, 0}), std::logic_error);
    BOOST_CHECK_THROW((fanout::http_server{ioc.get_executor(), opts, registry, 2}), std::out_of_range);
    fanout::http_server second{ioc.get_executor(), opts, registry, 1};
    // A registry made for other services gets series for this server's too (as a reload adds them).
    auto other = std::make_shared<fanout::metrics_registry>(std::vector<std::string>{"orders"}, 1);
    fanout::http_server third{ioc.get_executor(), opts, other, 0};
    BOOST_TEST(other->service_names() == (std::vector<std::string>{"orders", "users"}));
}

BOOST_AUTO_TEST_CASE(service_names_are_checked_and_labels_escaped) {
    for (std::string bad : {"", "a\"b", "a b", "a\\b", "n\xc3\xa4me"})
        BOOST_CHECK_THROW(fanout::make_service(bad, "http://127.0.0.1:1/x"), std::invalid_argument);
    fanout::metrics_registry registry{{"a\"b\\c\nd"}, 1};
    auto text = registry.render();
    BOOST_TEST(text.find(R"(service="a\"b\\c\nd")") != std::string::npos);
}

// Found by fuzz/config: upstream URLs whose request line or host would be wrong.
BOOST_AUTO_TEST_CASE(upstream_urls_found_by_fuzzing_are_refused) {
    for (std::string bad : {"http://[::]:9:02/", "http://h:1:2/x", "http://%41b/x"})
        BOOST_CHECK_THROW(fanout::make_service("a", bad), std::invalid_argument);
    BOOST_TEST(fanout::make_service("a", "http://[::1]:9/x:y").target == "/x:y");
}

// Found by fuzzing: an exponent Boost.JSON cannot hold is refused, as Boost.JSON refuses it.
BOOST_AUTO_TEST_CASE(json_exponents_found_by_fuzzing_agree_with_boost_json) {
    BOOST_TEST(!fanout::is_valid_json(" [0, -1.590, 1E400, -1e012334535780, 1E400] "));
    BOOST_TEST(!fanout::is_valid_json("1e2147483648"));
    BOOST_TEST(fanout::is_valid_json("[1e0000000000001, 1e999999999, 1E400]"));
}

BOOST_AUTO_TEST_CASE(timeout_ms_value_is_percent_decoded) {
    fanout::options opts;
    auto r =
        fanout::match(boost::beast::http::verb::get, "/api/aggregate/errgroup?timeout_ms=%32%35%30", opts);
    BOOST_TEST_REQUIRE(!r.answer.has_value());
    BOOST_TEST(r.timeout.count() == 250);
}

BOOST_AUTO_TEST_CASE(a_404_for_a_target_that_is_not_utf8_is_valid_json) {
    fanout::options opts;
    auto r = fanout::match(boost::beast::http::verb::get, "/caf\xe9/\xff\xfe/\xed\xa0\x80", opts);
    BOOST_TEST_REQUIRE(r.answer.has_value());
    BOOST_TEST(r.answer->status == 404u);
    boost::system::error_code ec;
    auto v = json::parse(r.answer->body, ec);
    BOOST_TEST_REQUIRE(!ec, r.answer->body);
    BOOST_TEST(
        v.at("error").as_string() ==
        "no such endpoint: /caf\xef\xbf\xbd/\xef\xbf\xbd\xef\xbf\xbd/\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
    );
}

// Each kind of failure line is limited on its own; what is dropped is reported with the next line.
BOOST_AUTO_TEST_CASE(failure_logs_are_rate_limited_per_kind) {
    std::ostringstream out;
    spdlog::logger log{"test", std::make_shared<spdlog::sinks::ostream_sink_st>(out)};
    fanout::use_json_lines(log);
    fanout::log_limiter limit{10};
    auto const t0 = std::chrono::steady_clock::now();
    auto emit = [&](std::string_view detail, std::chrono::steady_clock::time_point at) {
        if (limit.admit(log, spdlog::level::warn, "upstream_failure", detail, {}, at))
            log.warn(R"({{"event":"upstream_failure","kind":"{}"}})", detail);
    };
    for (int i = 0; i < 25; ++i) emit("status", t0 + std::chrono::milliseconds(i));
    for (int i = 0; i < 3; ++i) emit("connect", t0);
    emit("status", t0 + 1500ms);
    log.flush();
    std::vector<json::value> lines;
    std::istringstream in{out.str()};
    for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line));
    auto count = [&](std::string_view event, std::string_view kind) {
        return std::count_if(lines.begin(), lines.end(), [&](json::value const& v) {
            auto const& o = v.as_object();
            return o.at("event").as_string() == event && o.contains("kind") &&
                   o.at("kind").as_string() == kind;
        });
    };
    BOOST_TEST(count("upstream_failure", "status") == 11);
    BOOST_TEST(count("upstream_failure", "connect") == 3);
    BOOST_TEST_REQUIRE(lines.size() == 15u);
    auto const& summary = lines[13].as_object();
    BOOST_TEST(summary.at("event").as_string() == "log_suppressed");
    BOOST_TEST(summary.at("of").as_string() == "upstream_failure");
    BOOST_TEST(summary.at("detail").as_string() == "status");
    BOOST_TEST(summary.at("count").as_int64() == 15);
    BOOST_TEST(limit.suppressed_total() == 15u);
}

// One noisy service does not hide another's failures of the same kind; what is dropped is counted
// per service, and the line that says so names it.
BOOST_AUTO_TEST_CASE(failure_logs_are_rate_limited_per_service) {
    std::ostringstream out;
    spdlog::logger log{"test", std::make_shared<spdlog::sinks::ostream_sink_st>(out)};
    fanout::use_json_lines(log);
    fanout::log_limiter limit{10};
    auto const t0 = std::chrono::steady_clock::now();
    auto emit = [&](std::string const& service, std::chrono::steady_clock::time_point at) {
        if (limit.admit(log, spdlog::level::warn, "upstream_failure", "status", service, at))
            log.warn(R"({{"event":"upstream_failure","kind":"status","service":"{}"}})", service);
    };
    for (int i = 0; i < 50; ++i) emit("noisy", t0 + std::chrono::milliseconds(i));
    for (int i = 0; i < 3; ++i) emit("quiet", t0 + 100ms);
    emit("noisy", t0 + 1500ms);
    log.flush();
    std::vector<json::object> lines;
    std::istringstream in{out.str()};
    for (std::string line; std::getline(in, line);) lines.push_back(json::parse(line).as_object());
    auto of = [&](std::string_view event, std::string_view service) {
        return std::count_if(lines.begin(), lines.end(), [&](json::object const& o) {
            return o.at("event").as_string() == event && o.at("service").as_string() == service;
        });
    };
    BOOST_TEST(of("upstream_failure", "quiet") == 3);
    BOOST_TEST(of("upstream_failure", "noisy") == 11);
    BOOST_TEST_REQUIRE(of("log_suppressed", "noisy") == 1);
    BOOST_TEST(of("log_suppressed", "quiet") == 0);
    auto const summary = std::find_if(lines.begin(), lines.end(), [](json::object const& o) {
        return o.at("event").as_string() == "log_suppressed";
    });
    BOOST_TEST(summary->at("count").as_int64() == 40);
}

// Through the server: a flood of failures writes a bounded number of lines, metrics count them all.
BOOST_AUTO_TEST_CASE(a_failure_flood_writes_few_lines) {
    auto out = std::make_shared<std::ostringstream>();
    fanout::options opts;
    opts.logger =
        std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::ostream_sink_mt>(*out));
    fanout::use_json_lines(*opts.logger);
    opts.log_rate_limit = 5;
    {
        harness h{{sim("users", sim_behaviour::fail)}, opts};
        for (int i = 0; i < 30; ++i) BOOST_TEST_REQUIRE(get(h.port(), "/api/aggregate/wg").status == 502u);
        auto text = fetch(h.port(), "/metrics")->body();
        BOOST_TEST(metric(text, R"(fanout_upstream_failures_total{service="users",kind="status"})") == 30);
    }
    opts.logger->flush();
    auto text = out->str();
    std::size_t lines = 0;
    for (std::size_t at = 0; (at = text.find("\"event\":\"upstream_failure\"", at)) != std::string::npos;
         ++at)
        ++lines;
    // 5 a second per loop: 30 failures write fewer lines unless they were spread over six seconds.
    BOOST_TEST(lines >= 5u);
    BOOST_TEST(lines < 30u);
}

BOOST_AUTO_TEST_SUITE_END()
