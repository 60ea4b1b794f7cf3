// The admin listener (--admin-listen) and the access log (--access-log): over the real executable
// where the behaviour is the process's (its limits, its log, its shutdown), in-process otherwise.

#include "server/access_log.hpp"
#include "server/admin_listener.hpp"
#include "server/request_parser.hpp"
#include "server/warnings.hpp"
#include "tests/paths.hpp"
#include "tests/process.hpp"
#include "tests/support.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <sys/wait.h>

using namespace fanout;
using namespace fanout::test;
namespace json = boost::json;
namespace net = boost::asio;

namespace {

// fanout as a process, its log (stderr) in a file: a pipe that is not read while the process runs
// would stop it once full.
struct admin_fanout {
    std::filesystem::path dir = temporary_directory();
    child_process process;
    std::uint16_t port = 0;
    std::uint16_t admin_port = 0;  // 0: none

    explicit admin_fanout(std::vector<std::string> args) : process(command(args, dir / "log")) {
        port = port_of(process.read_line_starting("listening on http://127.0.0.1:", 10s));
        if (std::find(args.begin(), args.end(), "--admin-listen") != args.end())
            admin_port = port_of(process.read_line_starting("admin listening on http://127.0.0.1:", 10s));
    }
    ~admin_fanout() { std::filesystem::remove_all(dir); }
    admin_fanout(admin_fanout const&) = delete;
    admin_fanout& operator=(admin_fanout const&) = delete;

    static std::filesystem::path temporary_directory() {
        char name[] = "/tmp/fanout-admin-XXXXXX";
        BOOST_TEST_REQUIRE(mkdtemp(name) != nullptr);
        return name;
    }

    static std::vector<std::string> command(std::vector<std::string> args, std::filesystem::path const& log) {
        args.insert(
            args.begin(), {"/bin/sh", "-c", "log=$1; shift; exec \"$0\" \"$@\" 2>\"$log\"",
                           fanout::test_paths::fanout_binary, log.string(), "--listen", "127.0.0.1:0"}
        );
        return args;
    }

    static std::uint16_t port_of(std::optional<std::string> const& line) {
        BOOST_TEST_REQUIRE(line.has_value());
        return static_cast<std::uint16_t>(std::stoi(line->substr(line->rfind(':') + 1)));
    }

    // The log's events named `name` so far.
    std::vector<json::object> events(std::string_view name) const {
        std::ifstream in{dir / "log"};
        std::vector<json::object> found;
        for (std::string line; std::getline(in, line);) {
            if (in.eof()) break;  // a line being written: no newline yet
            if (!line.starts_with('{')) continue;
            auto event = json::parse(line).as_object();
            if (event.at("event").as_string() == name) found.push_back(std::move(event));
        }
        return found;
    }

    // Stops it (SIGTERM), waits for its exit (0), and returns the log's events named `name`.
    std::vector<json::object> stop_and_read(std::string_view name) {
        process.signal(SIGTERM);
        auto status = process.wait(20s);
        BOOST_TEST_REQUIRE(status.has_value());
        BOOST_TEST(WEXITSTATUS(*status) == 0);
        BOOST_TEST(events("stop").size() == 1u);
        return events(name);
    }
};

// A whole exchange on a connection of its own: `request` written, everything read until the
// server closes (the request should say Connection: close).
std::string round_trip(std::uint16_t port, std::string const& request) {
    net::io_context ioc;
    net::ip::tcp::socket sock{ioc};
    sock.connect({net::ip::make_address("127.0.0.1"), port});
    net::write(sock, net::buffer(request));
    std::string answer;
    boost::system::error_code ec;
    net::read(sock, net::dynamic_buffer(answer), ec);
    return answer;
}

std::string get_request(std::string const& target, std::string const& headers = "") {
    return "GET " + target + " HTTP/1.1\r\nHost: fanout\r\nConnection: close\r\n" + headers + "\r\n";
}

unsigned status_of(std::string const& answer) {
    return answer.size() > 12 ? static_cast<unsigned>(std::stoi(answer.substr(9, 3))) : 0;
}

// A traceparent whose trace id is `n` in its last digits, to tell requests apart in the log.
std::string trace_id(int n) {
    auto digits = std::to_string(n);
    return std::string(32 - digits.size(), 'a') + digits;
}

std::string traceparent(int n) {
    return "traceparent: 00-" + trace_id(n) + "-00f067aa0ba902b7-01\r\n";
}

}  // namespace

BOOST_AUTO_TEST_SUITE(test_admin)

// The main listener at --max-connections, held by idle keep-alive connections: the admin port still
// answers /healthz, /metrics (every loop's series) and /config, and nothing else.
BOOST_AUTO_TEST_CASE(answers_while_the_main_listener_is_full) {
    sim_runner upstreams{{sim("users")}};
    admin_fanout f{
        {"--threads", "2", "--max-connections", "3", "--admin-listen", "127.0.0.1:0", "--upstream",
         upstreams.upstream_flag(0)}};
    BOOST_TEST_REQUIRE(eventually([&] { return !f.events("start").empty(); }));
    BOOST_TEST(
        f.events("start").front().at("admin").as_string() ==
        "http://127.0.0.1:" + std::to_string(f.admin_port)
    );
    std::vector<std::unique_ptr<blocking_client>> held;
    for (int i = 0; i < 3; ++i) {
        held.push_back(std::make_unique<blocking_client>(f.port));
        held.back()->send_get("/healthz");
        auto answer = held.back()->read();
        BOOST_TEST_REQUIRE(answer.has_value());
        BOOST_TEST_REQUIRE(answer->result_int() == 200u);
    }
    blocking_client over{f.port};
    auto refused = over.read(5s);
    BOOST_TEST_REQUIRE(refused.has_value());
    BOOST_TEST(refused->result_int() == 503u);

    auto health = fetch(f.admin_port, "/healthz");
    BOOST_TEST_REQUIRE(health.has_value());
    BOOST_TEST(health->result_int() == 200u);
    BOOST_TEST(health->body() == R"({"status":"ok"})");

    auto metrics = fetch(f.admin_port, "/metrics");
    BOOST_TEST_REQUIRE(metrics.has_value());
    BOOST_TEST(metrics->result_int() == 200u);
    BOOST_TEST(metric(metrics->body(), "fanout_connections_open") == 3);  // the admin's not counted
    BOOST_TEST(metric(metrics->body(), "fanout_connections_rejected_total") >= 1);
    for (auto loop : {"0", "1"})
        BOOST_TEST(metrics->body().find(std::string(R"(loop=")") + loop + "\"") != std::string::npos, loop);
    auto const open_metrics = round_trip(
        f.admin_port, get_request("/metrics", "Accept: application/openmetrics-text; version=1.0.0\r\n")
    );
    BOOST_TEST(status_of(open_metrics) == 200u);
    BOOST_TEST(open_metrics.find("Content-Type: application/openmetrics-text") != std::string::npos);
    BOOST_TEST(open_metrics.ends_with("# EOF\n"));

    auto config = fetch(f.admin_port, "/config");
    BOOST_TEST_REQUIRE(config.has_value());
    BOOST_TEST(config->result_int() == 200u);
    auto const shown = json::parse(config->body()).as_object();
    BOOST_TEST(shown.at("listen").as_string() == "127.0.0.1:" + std::to_string(f.port));
    BOOST_TEST(shown.at("admin_listen").as_string() == "127.0.0.1:" + std::to_string(f.admin_port));
    BOOST_TEST(shown.at("max_connections").as_int64() == 3);
    BOOST_TEST(shown.at("upstreams").as_array().at(0).at("name").as_string() == "users");

    for (auto path : {"/", "/api/aggregate/wg", "/metricsx", "/config/"}) {
        auto other = fetch(f.admin_port, path);
        BOOST_TEST_REQUIRE(other.has_value());
        BOOST_TEST(other->result_int() == 404u, path);
    }
    // The held connections are served on.
    held.front()->send_get("/metrics");
    auto main_metrics = held.front()->read();
    BOOST_TEST_REQUIRE(main_metrics.has_value());
    BOOST_TEST(main_metrics->result_int() == 200u);
}

// From the signal on, the admin /healthz answers 503 as the main one does, on a kept-alive
// connection too; a scraper's idle connection does not hold the exit.
BOOST_AUTO_TEST_CASE(healthz_is_503_while_draining_and_the_admin_port_closes_at_exit) {
    sim_runner upstreams{{sim("users")}};
    admin_fanout f{
        {"--threads", "2", "--drain-delay-ms", "3000", "--admin-listen", "127.0.0.1:0", "--upstream",
         upstreams.upstream_flag(0)}};
    blocking_client scraper{f.admin_port};
    scraper.send_get("/healthz");
    auto before = scraper.read();
    BOOST_TEST_REQUIRE(before.has_value());
    BOOST_TEST(before->result_int() == 200u);

    f.process.signal(SIGTERM);
    BOOST_TEST(eventually([&] {
        try {
            auto r = fetch(f.admin_port, "/healthz", 2s);
            return r && r->result_int() == 503u;
        } catch (boost::system::system_error const&) {
            return false;  // closed: it never said 503
        }
    }));
    auto main_health = fetch(f.port, "/healthz", 2s);  // still accepting during the drain delay
    BOOST_TEST_REQUIRE(main_health.has_value());
    BOOST_TEST(main_health->result_int() == 503u);
    scraper.send_get("/healthz");
    auto during = scraper.read();
    BOOST_TEST_REQUIRE(during.has_value());
    BOOST_TEST(during->result_int() == 503u);
    BOOST_TEST(during->body() == R"({"status":"draining"})");

    auto status = f.process.wait(15s);  // the idle timeout (60 s) is not waited for
    BOOST_TEST_REQUIRE(status.has_value());
    BOOST_TEST(WEXITSTATUS(*status) == 0);
    BOOST_TEST(scraper.closed_by_server(1s));
    BOOST_TEST(refuses_connections(f.admin_port));
}

// In process from here: the admin listener of an http_server (shard 0's, whatever the threads).
struct admin_harness {
    static fanout::options with_admin(fanout::options o) {
        o.admin_listen_host = "127.0.0.1";
        o.admin_listen_port = 0;
        return o;
    }
    explicit admin_harness(fanout::options o = {}) : h{{sim("users")}, with_admin(std::move(o))} {
        auto const admin = h.server(0).admin_endpoint();
        BOOST_TEST_REQUIRE(admin.has_value());
        port = admin->port();
        for (std::size_t i = 1; i < h.threads(); ++i) BOOST_TEST(!h.server(i).admin_endpoint().has_value());
    }
    harness h;
    std::uint16_t port = 0;
};

BOOST_AUTO_TEST_CASE(connections_over_its_own_limit_get_503) {
    admin_harness a;
    std::vector<std::unique_ptr<blocking_client>> held;
    for (std::size_t i = 0; i < admin_listener::max_connections; ++i) {
        held.push_back(std::make_unique<blocking_client>(a.port));
        held.back()->send_get("/healthz");
        auto answer = held.back()->read();
        BOOST_TEST_REQUIRE(answer.has_value());
        BOOST_TEST_REQUIRE(answer->result_int() == 200u);
    }
    blocking_client over{a.port};
    auto refused = over.read(5s);
    BOOST_TEST_REQUIRE(refused.has_value());
    BOOST_TEST(refused->result_int() == 503u);
    BOOST_TEST(over.closed_by_server());
    // Not the main listener's: it serves on, and counts none of them.
    auto metrics = fetch(a.h.port(), "/metrics");
    BOOST_TEST_REQUIRE(metrics.has_value());
    BOOST_TEST(metric(metrics->body(), "fanout_connections_rejected_total") == 0);
    held.pop_back();  // closes one
    BOOST_TEST(eventually([&] {
        auto r = fetch(a.port, "/healthz", 1s);
        return r && r->result_int() == 200u;
    }));
}

// The main listener's request-size and time limits hold on the admin port too, and only GET and
// HEAD are answered.
BOOST_AUTO_TEST_CASE(the_main_listener_s_limits_hold) {
    fanout::options o;
    o.max_request_head = 1024;
    o.header_timeout = 300ms;
    o.idle_timeout = 30s;  // not what closes the slow request below
    admin_harness a{o};

    auto const big =
        round_trip(a.port, get_request("/healthz", "X-Filler: " + std::string(2000, 'x') + "\r\n"));
    BOOST_TEST(status_of(big) == 431u);

    blocking_client slow{a.port};
    slow.send("GET /healthz HTTP/1.1\r\nHost: fanout\r\n");  // never finished
    BOOST_TEST(slow.closed_by_server(5s));

    // Without pause: a head that never ends is refused at its limit, not read for ever.
    blocking_client flood{a.port};
    flood.send("GET /healthz HTTP/1.1\r\nHost: fanout\r\n");
    std::string const line = "X-More: " + std::string(100, 'y') + "\r\n";
    bool refused = false;
    for (int i = 0; i < 1000 && !refused; ++i) {
        try {
            flood.send(line);
        } catch (boost::system::system_error const&) {
            refused = true;  // reset after the 431
        }
    }
    auto answer = flood.read(5s);
    BOOST_TEST((refused || (answer && answer->result_int() == 431u)));

    auto const post = round_trip(
        a.port, "POST /healthz HTTP/1.1\r\nHost: fanout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    );
    BOOST_TEST(status_of(post) == 405u);
    BOOST_TEST(post.find("Allow: GET, HEAD") != std::string::npos);
    auto const head =
        round_trip(a.port, "HEAD /config HTTP/1.1\r\nHost: fanout\r\nConnection: close\r\n\r\n");
    BOOST_TEST(status_of(head) == 200u);
    BOOST_TEST(head.ends_with("\r\n\r\n"));  // no body
}

BOOST_AUTO_TEST_CASE(an_idle_connection_is_closed_after_the_idle_timeout) {
    fanout::options o;
    o.idle_timeout = 300ms;
    admin_harness a{o};
    blocking_client idle{a.port};
    idle.send_get("/healthz");
    BOOST_TEST_REQUIRE(idle.read().has_value());
    BOOST_TEST(idle.closed_by_server(5s));
}

// Accept is read whatever else the parser keeps: without a deadline header too (the admin
// listener's parser has none).
BOOST_AUTO_TEST_CASE(openmetrics_is_negotiated_without_a_deadline_header) {
    fanout::options o;
    o.deadline_header = "";
    harness h{{sim("users")}, o};
    auto const page = round_trip(
        h.port(), get_request("/metrics", "Accept: application/openmetrics-text; version=1.0.0\r\n")
    );
    BOOST_TEST(status_of(page) == 200u);
    BOOST_TEST(page.ends_with("# EOF\n"));
}

BOOST_AUTO_TEST_CASE(check_shows_the_admin_address_and_refuses_a_bad_one) {
    auto check = [](std::vector<std::string> args) {
        args.insert(
            args.begin(),
            {fanout::test_paths::fanout_binary, "--check", "--upstream", "users=http://127.0.0.1:9/users"}
        );
        return run_to_end(std::move(args), 20s);
    };
    auto const on = check({"--admin-listen", "127.0.0.1:9180", "--access-log", "--access-log-sample", "0.5"});
    BOOST_TEST_REQUIRE((on.status && WEXITSTATUS(*on.status) == 0), on.err);
    auto const shown = json::parse(on.out).as_object();
    BOOST_TEST(shown.at("admin_listen").as_string() == "127.0.0.1:9180");
    BOOST_TEST(shown.at("access_log").as_bool());
    BOOST_TEST(shown.at("access_log_sample").as_double() == 0.5);
    BOOST_TEST(!shown.at("trust_forwarded_for").as_bool());

    auto const off = check({});
    BOOST_TEST_REQUIRE((off.status && WEXITSTATUS(*off.status) == 0), off.err);
    BOOST_TEST(json::parse(off.out).at("admin_listen").is_null());
    // null, as printed, is a valid value: off.
    fanout::options o;
    o.admin_listen_host = "127.0.0.1";
    fanout::apply_config(o, R"({"admin_listen": null})");
    BOOST_TEST(o.admin_listen_host.empty());

    struct bad_case {
        std::vector<std::string> args;
        std::string named;
    };
    for (auto const& bad : std::vector<bad_case>{
             {{"--listen", "127.0.0.1:8080", "--admin-listen", "127.0.0.1:8080"}, "--admin-listen"},
             {{"--admin-listen", "example.invalid:9180"}, "--admin-listen"},
             {{"--admin-listen", "127.0.0.1"}, "--admin-listen"},
             {{"--access-log-sample", "0"}, "--access-log-sample"},
             {{"--access-log-sample", "1.5"}, "--access-log-sample"},
             {{"--access-log-sample", "x"}, "access-log-sample"},
         }) {
        auto const failed = check(bad.args);
        BOOST_TEST((failed.status && WEXITSTATUS(*failed.status) == 2), bad.args.back());
        BOOST_TEST(failed.err.find(bad.named) != std::string::npos, failed.err);
        BOOST_TEST(failed.out.empty());
    }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(test_access_log)

// One line per answer, at info, with what an operator needs, and never the query string.
BOOST_AUTO_TEST_CASE(a_line_per_answer_without_the_query) {
    sim_runner upstreams{{sim("users")}};
    admin_fanout f{{"--threads", "2", "--access-log", "--upstream", upstreams.upstream_flag(0)}};
    auto const wg = round_trip(
        f.port, get_request(
                    "/api/aggregate/wg?token=hunter2",
                    traceparent(1) + "X-Forwarded-For: 203.0.113.7\r\n"  // not trusted: not shown
                )
    );
    BOOST_TEST_REQUIRE(status_of(wg) == 200u);
    BOOST_TEST(status_of(round_trip(f.port, get_request("/nope?secret=hunter2", traceparent(2)))) == 404u);
    auto const absolute = round_trip(f.port, get_request("http://user:hunter2@fanout/healthz?x=hunter2"));
    BOOST_TEST(status_of(absolute) == 200u);

    auto const lines = f.stop_and_read("access");
    BOOST_TEST_REQUIRE(lines.size() == 3u);
    for (auto const& line : lines) {
        BOOST_TEST(json::serialize(line).find("hunter2") == std::string::npos, json::serialize(line));
        BOOST_TEST(line.at("level").as_string() == "info");
        BOOST_TEST(line.at("client").as_string() == "127.0.0.1");
        BOOST_TEST(line.at("method").as_string() == "GET");
        BOOST_TEST(!line.contains("forwarded_for"));
        BOOST_TEST(line.at("elapsed_ms").as_double() >= 0);
    }
    auto by_path = [&](std::string_view path) {
        auto it = std::find_if(lines.begin(), lines.end(), [&](auto const& l) {
            return l.at("path").as_string() == path;
        });
        BOOST_TEST_REQUIRE((it != lines.end()), path);
        return *it;
    };
    auto const ok = by_path("/api/aggregate/wg");
    BOOST_TEST(ok.at("route").as_string() == "/api/aggregate/wg");
    BOOST_TEST(ok.at("endpoint").as_string() == "wg");
    BOOST_TEST(ok.at("status").as_int64() == 200);
    BOOST_TEST(ok.at("bytes").as_int64() == static_cast<std::int64_t>(wg.size()));
    BOOST_TEST(ok.at("trace_id").as_string() == trace_id(1));
    auto const missing = by_path("/nope");
    BOOST_TEST(missing.at("status").as_int64() == 404);
    BOOST_TEST(missing.at("route").as_string() == "");
    auto const health = by_path("/healthz");
    BOOST_TEST(health.at("endpoint").as_string() == "healthz");
    BOOST_TEST(health.at("bytes").as_int64() == static_cast<std::int64_t>(absolute.size()));
}

// With --trust-forwarded-for the first X-Forwarded-For address is shown, when it is one. (The
// requests are told apart by their trace ids, which routes have.)
BOOST_AUTO_TEST_CASE(forwarded_for_when_trusted_and_an_address) {
    sim_runner upstreams{{sim("users")}};
    admin_fanout f{{"--access-log", "--trust-forwarded-for", "--upstream", upstreams.upstream_flag(0)}};
    std::vector<std::pair<std::string, std::string>> const sent{
        {"203.0.113.7, 10.0.0.1", "203.0.113.7"},
        {"  2001:db8::7 ,10.0.0.1", "2001:db8::7"},
        {"not-an-address", ""},
        {"203.0.113.7:5555", ""},
        {"fe80::1%eth0", ""},
        {std::string(200, '1'), ""},
        {"\"203.0.113.7\"", ""},
    };
    for (std::size_t i = 0; i < sent.size(); ++i) {
        auto headers = traceparent(static_cast<int>(i)) + "X-Forwarded-For: " + sent[i].first + "\r\n";
        if (i == 0) headers += "X-Forwarded-For: 198.51.100.9\r\n";  // a second line: not the first address
        BOOST_TEST(status_of(round_trip(f.port, get_request("/api/aggregate/wg", headers))) == 200u);
    }
    BOOST_TEST(status_of(round_trip(f.port, get_request("/api/aggregate/wg", traceparent(99)))) == 200u);
    auto const lines = f.stop_and_read("access");
    BOOST_TEST_REQUIRE(lines.size() == sent.size() + 1);
    std::map<std::string, std::string> shown;
    for (auto const& line : lines)
        shown[std::string(line.at("trace_id").as_string())] =
            line.contains("forwarded_for") ? std::string(line.at("forwarded_for").as_string()) : "";
    for (std::size_t i = 0; i < sent.size(); ++i)
        BOOST_TEST(shown[trace_id(static_cast<int>(i))] == sent[i].second, sent[i].first);
    BOOST_TEST(shown[trace_id(99)] == "");
}

// 0.25 of 400 answers is 100 lines, standard deviation 8.7: the bounds are over five of them away.
// Every 5xx is written.
BOOST_AUTO_TEST_CASE(sampling_writes_about_the_fraction_and_every_error) {
    sim_runner upstreams{{sim("users"), sim("orders", sim_behaviour::fail)}};
    admin_fanout f{
        {"--threads", "2", "--access-log", "--access-log-sample", "0.25", "--log-level", "info", "--upstream",
         upstreams.upstream_flag(0), "--upstream", upstreams.upstream_flag(1)}};
    blocking_client c{f.port};
    for (int i = 0; i < 400; ++i) {
        c.send_get("/healthz");
        auto answer = c.read();
        BOOST_TEST_REQUIRE(answer.has_value());
    }
    for (int i = 0; i < 20; ++i) {
        c.send_get("/api/aggregate/errgroup");
        auto answer = c.read();
        BOOST_TEST_REQUIRE(answer.has_value());
        BOOST_TEST_REQUIRE(answer->result_int() == 502u);
    }
    auto const lines = f.stop_and_read("access");
    auto const healthz = std::count_if(lines.begin(), lines.end(), [](auto const& l) {
        return l.at("path").as_string() == "/healthz";
    });
    auto const errors = std::count_if(lines.begin(), lines.end(), [](auto const& l) {
        return l.at("status").as_int64() == 502;
    });
    BOOST_TEST(healthz >= 50);
    BOOST_TEST(healthz <= 150);
    BOOST_TEST(errors == 20);
}

// Off by default, at any log level.
BOOST_AUTO_TEST_CASE(off_by_default) {
    captured_events events;
    fanout::options o;
    events.attach(o, "trace");
    {
        harness h{{sim("users")}, o};
        BOOST_TEST(get(h.port(), "/api/aggregate/wg").status == 200u);
    }
    BOOST_TEST(events.with(R"("event":"access")").empty());
}

// The decisions, without I/O: 5xx always; a draw below the fraction of 2^64 is written.
BOOST_AUTO_TEST_CASE(sampled_by_the_draw_and_errors_always) {
    fanout::options o;
    o.access_log = true;
    o.access_log_sample = 0.25;
    access_log quarter{o};
    auto const max = std::numeric_limits<std::uint64_t>::max();
    BOOST_TEST(quarter.sampled(200, 0));
    BOOST_TEST(quarter.sampled(200, max / 4 - 1024));
    BOOST_TEST(!quarter.sampled(200, max / 4 + 1024));
    BOOST_TEST(!quarter.sampled(499, max));
    BOOST_TEST(quarter.sampled(500, max));
    BOOST_TEST(quarter.sampled(503, max));
    o.access_log_sample = 1;
    BOOST_TEST(access_log{o}.sampled(200, max));
}

// Settings that leave the access log or X-Forwarded-For without effect are warned about.
BOOST_AUTO_TEST_CASE(self_defeating_settings_are_warnings) {
    fanout::options o;
    o.upstreams.push_back(fanout::parse_service("users=http://127.0.0.1:9/users"));
    o.access_log = true;
    o.log_level = "warn";
    auto const quiet = config_warnings(o);
    BOOST_TEST(std::count_if(quiet.begin(), quiet.end(), [](auto const& w) {
                   return w.starts_with("access_log:");
               }) == 1);
    o.access_log = false;
    o.trust_forwarded_for = true;
    auto const unused = config_warnings(o);
    BOOST_TEST(std::count_if(unused.begin(), unused.end(), [](auto const& w) {
                   return w.starts_with("trust_forwarded_for:");
               }) == 1);
    o.access_log = true;
    o.log_level = "info";
    BOOST_TEST(config_warnings(o).empty());
}

BOOST_AUTO_TEST_CASE(the_path_leaves_the_query_and_userinfo_out) {
    BOOST_TEST(path_without_query("/a/b?token=x") == "/a/b");
    BOOST_TEST(path_without_query("/a/b") == "/a/b");
    BOOST_TEST(path_without_query("/?") == "/");
    BOOST_TEST(path_without_query("http://user:pw@host:80/a?b") == "/a");
    BOOST_TEST(path_without_query("http://host") == "/");
    BOOST_TEST(path_without_query("http://host?user=pw") == "/");
    BOOST_TEST(path_without_query("*") == "");
    BOOST_TEST(path_without_query("") == "");
}

BOOST_AUTO_TEST_SUITE_END()
