// The metrics page as a scraper and an alert rule read it.
#include "server/metrics_shard.hpp"
#include "server/process_stats.hpp"
#include "tests/paths.hpp"
#include "tests/process.hpp"
#include "tests/support.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/test/unit_test.hpp>

#include <chrono>
#include <fanout/aggregator.hpp>
#include <fanout/metrics.hpp>
#include <fstream>
#include <openssl/crypto.h>
#include <regex>
#include <sstream>
#include <string>

using namespace fanout;
using namespace fanout::test;
namespace net = boost::asio;

namespace {

// An aggregator on an event loop of its own that the test runs for each request, sharing a registry.
struct mounted {
    net::io_context ioc;
    fanout::aggregator agg;

    mounted(fanout::options o, std::shared_ptr<fanout::metrics_registry> reg, std::size_t shard)
        : agg(ioc.get_executor(), std::move(o), std::move(reg), shard) {}

    fanout::aggregator::response_type get(std::string target) {
        auto answer =
            net::co_spawn(ioc, agg.handle(boost::beast::http::verb::get, std::move(target)), net::use_future);
        ioc.restart();
        ioc.run();
        return answer.get();
    }
};

// A registry of one loop for the seed's routes, its shard claimed for the test to write.
struct one_shard {
    fanout::metrics_registry registry;
    fanout::metrics_shard& shard;

    explicit one_shard(std::vector<std::string> services)
        : registry(std::move(services), 1), shard(fanout::detail::metrics_writer::claim(registry, 0)) {}
    ~one_shard() { fanout::detail::metrics_writer::release(registry, 0); }
};

std::string const wg_labels = R"(endpoint="wg",route="/api/aggregate/wg")";

}  // namespace

BOOST_AUTO_TEST_SUITE(test_exposition)

// A 3x regression of a sub-millisecond answer and a hung request must both be visible.
BOOST_AUTO_TEST_CASE(a_tenth_of_a_millisecond_and_thirty_seconds_fall_in_finite_buckets) {
    one_shard m{{"users"}};
    m.shard.count_request(fanout::endpoint::wg, 0, 200, 100us);
    m.shard.count_request(fanout::endpoint::wg, 0, 200, 300us);
    m.shard.count_request(fanout::endpoint::wg, 0, 200, 30s);
    auto& ok = m.shard.services[0].requests[static_cast<std::size_t>(fanout::request_outcome::ok)];
    ok.observe(100us);
    ok.observe(30s);
    auto const text = m.registry.render();
    auto request_bucket = [&](std::string const& le) {
        return metric(text, "fanout_request_duration_seconds_bucket{" + wg_labels + ",le=\"" + le + "\"}");
    };
    BOOST_TEST(request_bucket("5e-05") == 0);
    BOOST_TEST(request_bucket("0.0001") == 1);
    BOOST_TEST(request_bucket("0.00025") == 1);
    BOOST_TEST(request_bucket("0.0005") == 2);
    BOOST_TEST(request_bucket("10") == 2);
    BOOST_TEST(request_bucket("30") == 3);
    BOOST_TEST(request_bucket("60") == 3);
    BOOST_TEST(request_bucket("+Inf") == 3);
    auto upstream_bucket = [&](std::string const& le) {
        return metric(
            text, R"(fanout_upstream_request_duration_seconds_bucket{service="users",outcome="ok",le=")" +
                      le + "\"}"
        );
    };
    BOOST_TEST(upstream_bucket("0.0001") == 1);
    BOOST_TEST(upstream_bucket("10") == 1);
    BOOST_TEST(upstream_bucket("30") == 2);
}

// Each loop has its own breaker: one loop open and the other closed are both visible, 0/1 each.
BOOST_AUTO_TEST_CASE(breaker_state_is_one_gauge_per_loop_and_state) {
    fanout::options o;
    auto refused = fanout::make_service("refused", "http://127.0.0.1:" + std::to_string(closed_port()) + "/");
    refused.breaker_failures = 1;
    refused.breaker_cooldown = 60s;
    o.upstreams = {refused};
    auto reg = std::make_shared<fanout::metrics_registry>(std::vector<std::string>{"refused"}, 2);
    mounted first{o, reg, 0}, second{o, reg, 1};
    BOOST_TEST(first.get("/api/aggregate/wg").result_int() == 502u);  // connect: the breaker opens
    BOOST_TEST(second.get("/api/aggregate/wg").result_int() == 502u);
    auto const page = second.get("/metrics");
    BOOST_TEST(page.result_int() == 200u);
    auto state = [&](char const* loop, char const* s) {
        return metric(
            page.body(), std::string(R"(fanout_upstream_breaker_state{service="refused",loop=")") + loop +
                             R"(",state=")" + s + "\"}"
        );
    };
    BOOST_TEST(state("0", "open") == 1);
    BOOST_TEST(state("0", "closed") == 0);
    BOOST_TEST(state("0", "half_open") == 0);
    BOOST_TEST(state("1", "open") == 1);  // its own failure opened it too
    BOOST_TEST(state("1", "closed") == 0);
}

// The clearer names count what the old ones count, which stay for one release.
BOOST_AUTO_TEST_CASE(retry_counters_under_new_and_deprecated_names) {
    auto refused = fanout::make_service("refused", "http://127.0.0.1:" + std::to_string(closed_port()) + "/");
    refused.max_retries = 1;
    refused.retry_backoff = 1ms;
    harness h{{sim("users", sim_behaviour::close_after_response)}, {}, {refused}};
    for (int i = 0; i < 3; ++i) BOOST_TEST(get(h.port(), "/api/aggregate/wg").status == 200u);
    auto const m = scrape(h.port());
    auto const stale = metric(m, R"(fanout_upstream_stale_connection_resends_total{service="users"})");
    auto const retried = metric(m, R"(fanout_upstream_failure_retries_total{service="refused"})");
    BOOST_TEST(stale >= 3.0 - h.threads());
    BOOST_TEST(stale == metric(m, R"(fanout_upstream_retries_total{service="users"})"));
    BOOST_TEST(retried == 3);
    BOOST_TEST(retried == metric(m, R"(fanout_upstream_fetch_retries_total{service="refused"})"));
    BOOST_TEST(metric(m, R"(fanout_upstream_failure_retries_total{service="users"})") == 0);
    BOOST_TEST(metric(m, R"(fanout_upstream_stale_connection_resends_total{service="refused"})") == 0);
    BOOST_TEST(m.find("# HELP fanout_upstream_retries_total Deprecated") != std::string::npos);
}

// A command name may hold spaces and parentheses: the fields are counted from its last ')'.
BOOST_AUTO_TEST_CASE(proc_stat_fields_are_counted_after_the_command_name) {
    std::string const stat =
        "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 150 0 0 20 0 3 0 1000 123456789 300 "
        "18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 17 1 0 0 0 0 0\n";
    auto const p = fanout::parse_proc_stat(stat, 100, 4096, 1'700'000'000);
    BOOST_TEST_REQUIRE(p.has_value());
    BOOST_TEST(p->cpu_seconds == 4.0);  // (250 + 150) ticks
    BOOST_TEST(p->start_time_seconds == 1'700'000'010.0);
    BOOST_TEST(p->virtual_bytes == 123456789u);
    BOOST_TEST(p->resident_bytes == 300u * 4096);
    BOOST_TEST(!fanout::parse_proc_stat("4242 (x", 100, 4096, 0).has_value());
    BOOST_TEST(!fanout::parse_proc_stat("4242 (x) S 1 2", 100, 4096, 0).has_value());
    auto bad_utime = stat;
    bad_utime.replace(bad_utime.find(" 250 "), 5, " x ");
    BOOST_TEST(!fanout::parse_proc_stat(bad_utime, 100, 4096, 0).has_value());
}

// The fanout program exports the process collector's series and its build; they follow the process.
BOOST_AUTO_TEST_CASE(process_metrics_of_the_program_follow_its_connections) {
    sim_runner upstreams{{sim("users")}};
    child_process f{
        {fanout::test_paths::fanout_binary, "--listen", "127.0.0.1:0", "--threads", "1", "--log-level",
         "warn", "--upstream", upstreams.upstream_flag(0)}};
    auto line = f.read_line_starting("listening on http://127.0.0.1:", 10s);
    BOOST_TEST_REQUIRE(line.has_value());
    auto const port = static_cast<std::uint16_t>(std::stoi(line->substr(line->rfind(':') + 1)));

    auto const before = scrape(port);
    auto const fds_before = metric(before, "process_open_fds");
    BOOST_TEST(fds_before > 0);
    BOOST_TEST(metric(before, "process_max_fds") > fds_before);
    BOOST_TEST(metric(before, "process_resident_memory_bytes") > 0);
    BOOST_TEST(
        metric(before, "process_virtual_memory_bytes") >= metric(before, "process_resident_memory_bytes")
    );
    BOOST_TEST(metric(before, "process_cpu_seconds_total") >= 0);
    auto const now =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    auto const started = metric(before, "process_start_time_seconds");
    BOOST_TEST(started > now - 60);
    BOOST_TEST(started <= now + 1);
    auto const build = std::string(R"(fanout_build_info{version=")") + FANOUT_VERSION +
                       R"(",boost="1.81.0",openssl=")" + OpenSSL_version(OPENSSL_VERSION_STRING) + "\"}";
    BOOST_TEST(metric(before, build) == 1, build);

    std::vector<std::unique_ptr<blocking_client>> open;
    for (int i = 0; i < 20; ++i) {
        open.push_back(std::make_unique<blocking_client>(port));
        open.back()->send_get("/healthz");
        BOOST_TEST_REQUIRE(open.back()->read().has_value());  // accepted, and kept open
    }
    auto const during = scrape(port);
    BOOST_TEST(metric(during, "process_open_fds") >= fds_before + 20);
    BOOST_TEST(metric(during, "process_cpu_seconds_total") >= metric(before, "process_cpu_seconds_total"));
    open.clear();
    BOOST_TEST(eventually([&] { return metric(scrape(port), "process_open_fds") <= fds_before + 1; }));
}

// Embedded, the application decides: none of them unless it asks.
BOOST_AUTO_TEST_CASE(process_metrics_are_opt_in_for_an_application) {
    harness h{{sim("users")}};
    auto const off = scrape(h.port());
    BOOST_TEST(off.find("process_") == std::string::npos);
    BOOST_TEST(off.find("fanout_build_info") == std::string::npos);
    h.server().metrics().include_process_metrics(true);
    auto const on = scrape(h.port());
    BOOST_TEST(metric(on, "process_open_fds") > 0);
    BOOST_TEST(on.find("fanout_build_info{") != std::string::npos);
}

// An instance serving its drain delay says so, for an alert on one that drains for too long.
BOOST_AUTO_TEST_CASE(draining_gauge_is_one_from_the_start_of_a_shutdown) {
    fanout::options opts;
    opts.drain_delay = 60s;
    harness h{{sim("users")}, opts};
    auto const port = h.port();
    BOOST_TEST(metric(scrape(port), "fanout_draining") == 0);
    for (std::size_t i = 0; i < h.threads(); ++i) h.server(i).shutdown();
    BOOST_TEST(eventually([&] { return metric(scrape(port), "fanout_draining") == 1; }));
    shutdown_all(h, 5s);
    BOOST_TEST(h.wait_stopped(5s));
}

BOOST_AUTO_TEST_CASE(openmetrics_is_served_to_whoever_prefers_it) {
    // What Prometheus 2.42 sends.
    BOOST_TEST(
        (negotiate_exposition(
             "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
             "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
         ) == exposition::openmetrics)
    );
    BOOST_TEST(
        (negotiate_exposition("Application/OpenMetrics-Text; version=1.0.0") == exposition::openmetrics)
    );
    BOOST_TEST((negotiate_exposition("") == exposition::prometheus_text));
    BOOST_TEST((negotiate_exposition("*/*") == exposition::prometheus_text));
    BOOST_TEST((negotiate_exposition("text/plain;version=0.0.4") == exposition::prometheus_text));
    BOOST_TEST((
        negotiate_exposition("application/openmetrics-text;q=0.2, text/plain") == exposition::prometheus_text
    ));
    BOOST_TEST((negotiate_exposition("application/openmetrics-text;q=0") == exposition::prometheus_text));
    BOOST_TEST((negotiate_exposition("application/openmetrics-text;q=x") == exposition::prometheus_text));
    BOOST_TEST(
        (fanout::content_type(exposition::openmetrics) ==
         "application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
}

// A scrape asking for OpenMetrics gets it, with the trace id of the request just made as the
// exemplar of the buckets it fell in; the failure log names the same trace. Others get 0.0.4.
BOOST_AUTO_TEST_CASE(openmetrics_scrape_links_buckets_to_the_trace_of_a_request) {
    std::string const trace_id = "0af7651916cd43dd8448eb211c80319c";
    captured_events log;
    fanout::options opts;
    log.attach(opts, "warning");
    harness h{{sim("users"), sim("orders", sim_behaviour::fail)}, opts};
    BOOST_TEST(
        get(h.port(), "/api/aggregate/wg", 10s, {{"traceparent", "00-" + trace_id + "-b7ad6b7169203331-01"}}
        ).status == 200u
    );
    BOOST_TEST(log.with(R"("event":"upstream_failure")").size() == 1u);
    BOOST_TEST(log.with(R"("trace_id":")" + trace_id + "\"").size() == 1u);

    auto const exemplar = R"( # {trace_id=")" + trace_id + R"("} )";
    std::string page;
    // The answer is counted once written, which a scrape on another loop may come before.
    BOOST_TEST(eventually([&] {
        blocking_client c{h.port()};
        c.send(
            "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: application/openmetrics-text; version=1.0.0\r\n\r\n"
        );
        auto res = c.read();
        if (!res) return false;
        BOOST_TEST(
            (*res)[boost::beast::http::field::content_type] ==
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        page = res->body();
        return page.find(R"(fanout_request_duration_seconds_bucket{)" + wg_labels) != std::string::npos &&
               page.find(exemplar) != std::string::npos &&
               metric(page, R"(fanout_requests_total{)" + wg_labels + R"(,code="200"})") == 1;
    }));
    BOOST_TEST(page.ends_with("\n# EOF\n"));
    BOOST_TEST(page.find("# TYPE fanout_requests counter\n") != std::string::npos);
    BOOST_TEST(page.find("# TYPE fanout_requests_total") == std::string::npos);
    BOOST_TEST(page.find("# TYPE fanout_request_duration_seconds histogram\n") != std::string::npos);
    // Every sample, comment and exemplar is well formed; the exemplars are on buckets only.
    std::regex const sample{R"(^[a-z_]+(\{([a-z_]+="[^"]*",?)+\})? -?[0-9.e+-]+$)"};
    std::regex const bucket{
        R"(^[a-z_]+_bucket\{([a-z_]+="[^"]*",?)+\} [0-9]+( # \{trace_id="[0-9a-f]{32}"\} [0-9.e+-]+ [0-9.e+-]+)?$)"};
    std::regex const comment{R"(^# (HELP|TYPE) [a-z_]+ .+$|^# EOF$)"};
    std::istringstream lines{page};
    int exemplars = 0;
    for (std::string line; std::getline(lines, line);) {
        bool const ok = std::regex_match(
            line, line.starts_with("#")                        ? comment
                  : line.find("_bucket{") != std::string::npos ? bucket
                                                               : sample
        );
        BOOST_TEST(ok, line);
        exemplars += line.find(" # {") != std::string::npos;
    }
    // The request's bucket, and each service's fetch (users answered, orders failed).
    auto with_exemplar = [&](std::string const& prefix) {
        std::istringstream in{page};
        for (std::string line; std::getline(in, line);)
            if (line.starts_with(prefix) && line.find(exemplar) != std::string::npos) return true;
        return false;
    };
    BOOST_TEST(with_exemplar("fanout_request_duration_seconds_bucket{" + wg_labels));
    BOOST_TEST(with_exemplar(R"(fanout_upstream_request_duration_seconds_bucket{service="users",outcome="ok")"
    ));
    BOOST_TEST(
        with_exemplar(R"(fanout_upstream_request_duration_seconds_bucket{service="orders",outcome="error")")
    );
    BOOST_TEST(exemplars == 3);

    auto const plain = scrape(h.port());
    BOOST_TEST(plain.find("# EOF") == std::string::npos);
    BOOST_TEST(plain.find(" # {") == std::string::npos);
    BOOST_TEST(plain.find("# TYPE fanout_requests_total counter\n") != std::string::npos);
}

// Embedded, the aggregator answers /metrics as the server does.
BOOST_AUTO_TEST_CASE(an_embedded_aggregator_negotiates_too) {
    fanout::options o;
    o.upstreams = {
        fanout::make_service("refused", "http://127.0.0.1:" + std::to_string(closed_port()) + "/")};
    mounted m{o, nullptr, 0};
    fanout::request_fields fields;
    fields.accept = "application/openmetrics-text";
    auto om = net::co_spawn(
        m.ioc, m.agg.handle(boost::beast::http::verb::get, "/metrics", 11, fields), net::use_future
    );
    m.ioc.restart();
    m.ioc.run();
    auto const res = om.get();
    BOOST_TEST(
        res[boost::beast::http::field::content_type] ==
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    BOOST_TEST(res.body().ends_with("# EOF\n"));
    auto const plain = m.get("/metrics");
    BOOST_TEST(plain[boost::beast::http::field::content_type] == "text/plain; version=0.0.4; charset=utf-8");
}

// Every family the page has is in the metrics table of docs/operations.md, by its name or, on a row
// of several, by the suffix after the row's first name (`fanout_connections_accepted_total`,
// `_rejected_total`).
BOOST_AUTO_TEST_CASE(the_documented_table_lists_every_series) {
    std::ifstream in{fanout::test_paths::source("docs/operations.md")};
    std::vector<std::string> rows;
    for (std::string line; std::getline(in, line);)
        if (line.starts_with("| `")) rows.push_back(line);
    BOOST_TEST_REQUIRE(!rows.empty());
    one_shard m{{"users"}};
    m.registry.include_process_metrics(true);
    std::istringstream page{m.registry.render()};
    int families = 0;
    for (std::string line; std::getline(page, line);) {
        if (!line.starts_with("# TYPE ")) continue;
        ++families;
        auto const name = line.substr(7, line.find(' ', 7) - 7);
        bool listed = false;
        for (auto const& row : rows) {
            listed = listed || row.find("`" + name + "`") != std::string::npos;
            for (auto cut = name.find('_', 1); !listed && cut != std::string::npos;
                 cut = name.find('_', cut + 1))
                listed = row.starts_with("| `" + name.substr(0, cut)) &&
                         row.find("`" + name.substr(cut) + "`") != std::string::npos;
        }
        BOOST_TEST(listed, name << " is not in the metrics table of docs/operations.md");
    }
    BOOST_TEST(families > 30);
}

BOOST_AUTO_TEST_SUITE_END()
