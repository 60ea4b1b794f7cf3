// Reload: SIGHUP to the fanout program (a changed upstream and route under load, an invalid file,
// settings only a restart changes, the demo), http_server::async_reload and aggregator::reload in
// process, and the state a reload carries over for the services it leaves as they were.

#include "tests/paths.hpp"
#include "tests/process.hpp"
#include "tests/support.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <fanout/aggregator.hpp>
#include <filesystem>
#include <fstream>
#include <future>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace fanout;
using namespace fanout::test;
namespace json = boost::json;
namespace net = boost::asio;

namespace {

// Not fanout::response (server/response.hpp), which the other files of a unity build bring in.
using http_answer = fanout::test::response;

// The fanout program with its log (stderr) read line by line after "listening on".
struct reloading_fanout {
    child_process process;
    std::uint16_t port = 0;

    explicit reloading_fanout(std::vector<std::string> args) : process(command(std::move(args))) {
        auto line = process.read_line_starting("listening on http://127.0.0.1:", 10s);
        BOOST_TEST_REQUIRE(line.has_value());
        port = static_cast<std::uint16_t>(std::stoi(line->substr(line->rfind(':') + 1)));
    }

    static std::vector<std::string> command(std::vector<std::string> args) {
        args.insert(
            args.begin(), {"/bin/sh", "-c", "exec \"$0\" \"$@\" 2>&1", fanout::test_paths::fanout_binary}
        );
        return args;
    }

    // The next log event named `name`, the lines before it skipped.
    std::optional<json::object> event(std::string_view name, std::chrono::milliseconds timeout = 10s) {
        auto const until = std::chrono::steady_clock::now() + timeout;
        for (;;) {
            auto const left = std::chrono::duration_cast<std::chrono::milliseconds>(
                until - std::chrono::steady_clock::now()
            );
            if (left.count() <= 0) return std::nullopt;
            auto line = process.read_line_starting("{", left);
            if (!line) return std::nullopt;
            auto v = json::parse(*line).as_object();
            if (v.at("event").as_string() == name) return v;
        }
    }

    // SIGHUP, and the config_reload event it is answered with.
    json::object reload() {
        process.signal(SIGHUP);
        auto e = event("config_reload");
        BOOST_TEST_REQUIRE(e.has_value());
        return *e;
    }
};

std::vector<std::string> strings(json::value const& list) {
    std::vector<std::string> out;
    for (auto const& v : list.as_array()) out.emplace_back(v.as_string());
    return out;
}

using names = std::vector<std::string>;

std::string service_json(std::string const& name, std::string const& url, std::string const& extra = "") {
    return R"({"name": ")" + name + R"(", "url": ")" + url + "\"" + extra + "}";
}

std::string route(std::string const& path, std::string const& pattern, std::string const& backends) {
    return R"({"path": ")" + path + R"(", "pattern": ")" + pattern + R"(", "backends": [)" + backends + "]}";
}

// The fanout program's error line for this file, as `fanout --check` prints it, without "fanout: ".
std::string check_error(config_file const& config) {
    auto const checked =
        run_to_end({fanout::test_paths::fanout_binary, "--check", "--config", config.path()}, 20s);
    BOOST_TEST_REQUIRE(checked.status.has_value());
    BOOST_TEST(WEXITSTATUS(*checked.status) != 0);
    auto const at = checked.err.find("fanout: ");
    BOOST_TEST_REQUIRE(at != std::string::npos, checked.err);
    auto line = checked.err.substr(at + 8, checked.err.find('\n', at) - at - 8);
    std::string_view const hint = " (see --help)";  // after a flag or key, not part of the message
    if (line.ends_with(hint)) line.resize(line.size() - hint.size());
    return line;
}

// GET target from a thread of its own (no test assertion there: Boost.Test is not thread-safe);
// answer_of() reads the answer on the test's thread.
std::future<std::optional<http_answer>> get_apart(std::uint16_t port, std::string target) {
    return std::async(std::launch::async, [port, target] { return fetch(port, target, 20s); });
}

aggregate_answer answer_of(std::future<std::optional<http_answer>>& pending) {
    auto const res = pending.get();
    BOOST_TEST_REQUIRE(res.has_value());
    return {
        .status = res->result_int(),
        .complete_header = std::string((*res)["X-Aggregate-Complete"]),
        .body = json::parse(res->body()),
        .took = {}};
}

// The target the backend of `key` was fetched with, from an aggregate answer; "" without one.
std::string target_of(aggregate_answer const& a, std::string_view key) {
    auto const* results = a.body.as_object().if_contains("results");
    if (!results || !results->as_object().contains(key)) return "";
    return std::string(results->at(key).at("target").as_string());
}

// Requests on one keep-alive connection, sent back to back from a thread of its own until stopped:
// what a client under load sees across a reload. No test assertion off the test's thread.
class load {
  public:
    load(std::uint16_t port, std::string target) {
        thread_ = std::thread([this, port, target] {
            std::optional<blocking_client> c;
            while (!stop_) {
                std::optional<http_answer> res;
                try {
                    if (!c) c.emplace(port);
                    c->send_get(target);
                    res = c->read(10s);
                } catch (std::exception const&) {
                }
                ++sent_;
                if (!res) {
                    ++errors_;
                    c.reset();
                } else if (res->result_int() != 200) {
                    ++non_200_;
                }
            }
        });
    }
    ~load() { finish(); }
    void finish() {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
    }
    std::uint64_t sent() const { return sent_; }
    std::uint64_t errors() const { return errors_; }
    std::uint64_t non_200() const { return non_200_; }

  private:
    std::atomic<bool> stop_{false};
    std::atomic<std::uint64_t> sent_{0}, errors_{0}, non_200_{0};
    std::thread thread_;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(test_reload)

// Old requests finish with the configuration they started with (upstream A, route key "old"), new
// ones take the new one (upstream B, key "new"), and a client sending without pause across the
// reload sees no error. Routes are added, changed and removed.
BOOST_AUTO_TEST_CASE(a_changed_upstream_and_route_under_load) {
    echo_upstream a, b;
    auto const v1 = R"({"listen": "127.0.0.1:0", "threads": 2, "upstreams": [)" +
                    service_json("svc", a.url("/sleep/3000")) + R"(, )" +
                    service_json("fast", a.url("/fast")) + R"(], "routes": [)" +
                    route("/api/r", "wg", R"({"service": "svc", "key": "old"})") + ", " +
                    route("/api/load", "context-timeout", R"({"service": "fast"})") + ", " +
                    route("/api/gone", "errgroup", R"({"service": "fast"})") + "]}";
    auto const v2 = R"({"listen": "127.0.0.1:0", "threads": 2, "upstreams": [)" +
                    service_json("svc", b.url("/v2")) + R"(, )" + service_json("fast", a.url("/fast")) +
                    R"(], "routes": [)" + route("/api/r", "wg", R"({"service": "svc", "key": "new"})") +
                    ", " + route("/api/load", "context-timeout", R"({"service": "fast"})") + ", " +
                    route("/api/new", "channel", R"({"service": "svc"})") + "]}";
    config_file config{v1};
    reloading_fanout f{{"--config", config.path()}};

    std::vector<std::future<std::optional<http_answer>>> in_flight;
    for (int i = 0; i < 6; ++i) in_flight.push_back(get_apart(f.port, "/api/r"));
    BOOST_TEST_REQUIRE(eventually([&] { return a.counters().requests >= 6; }, 10s));
    load busy{f.port, "/api/load"};
    BOOST_TEST_REQUIRE(eventually([&] { return busy.sent() >= 20; }, 10s));

    config.rewrite(v2);
    auto const e = f.reload();
    // Showing that they were still in flight at the switch needs a bound: 3 s, for a reload.
    BOOST_TEST((in_flight[0].wait_for(0s) == std::future_status::timeout));
    BOOST_TEST(e.at("reloaded").as_bool());
    BOOST_TEST(strings(e.at("settings")) == names{}, json::serialize(e));
    BOOST_TEST(strings(e.at("services").at("changed")) == names{"svc"});
    BOOST_TEST(strings(e.at("services").at("added")) == names{});
    BOOST_TEST(strings(e.at("routes").at("changed")) == names{"/api/r"});
    BOOST_TEST(strings(e.at("routes").at("added")) == names{"/api/new"});
    BOOST_TEST(strings(e.at("routes").at("removed")) == names{"/api/gone"});

    // Every loop has switched once the event is logged: a new request takes the new route and upstream.
    auto const after = get(f.port, "/api/r");
    BOOST_TEST(after.status == 200u);
    BOOST_TEST(target_of(after, "new") == "/v2", json::serialize(after.body));
    BOOST_TEST(b.counters().requests >= 1u);
    BOOST_TEST(get(f.port, "/api/new").status == 200u);
    BOOST_TEST(get(f.port, "/api/gone").status == 404u);
    // The requests that were waiting on A finish there, with their route as it was.
    for (auto& r : in_flight) {
        auto const old = answer_of(r);
        BOOST_TEST(old.status == 200u);
        BOOST_TEST(target_of(old, "old") == "/sleep/3000", json::serialize(old.body));
    }
    auto const before_end = busy.sent();
    BOOST_TEST_REQUIRE(eventually([&] { return busy.sent() >= before_end + 20; }, 10s));
    busy.finish();
    BOOST_TEST(busy.errors() == 0u);
    BOOST_TEST(busy.non_200() == 0u);
    f.process.signal(SIGTERM);
    auto const status = f.process.wait(10s);
    BOOST_TEST_REQUIRE(status.has_value());
    BOOST_TEST(WEXITSTATUS(*status) == 0);
}

// SIGHUP no longer ends the process (it exited 129): an unchanged file is a reload that changes
// nothing, and two signals in a row are two reloads.
BOOST_AUTO_TEST_CASE(sighup_does_not_end_the_process) {
    echo_upstream a;
    config_file config{
        R"({"listen": "127.0.0.1:0", "threads": 2, "upstreams": [)" + service_json("svc", a.url("/x")) +
        "]}"};
    reloading_fanout f{{"--config", config.path()}};
    for (int i = 0; i < 2; ++i) {
        auto const e = f.reload();
        BOOST_TEST(e.at("reloaded").as_bool());
        BOOST_TEST(e.at("level").as_string() == "info");
        BOOST_TEST(strings(e.at("settings")) == names{});
        BOOST_TEST(strings(e.at("services").at("changed")) == names{});
        BOOST_TEST(strings(e.at("restart_required")) == names{});
    }
    BOOST_TEST(get(f.port, "/api/aggregate/wg").status == 200u);
    BOOST_TEST(!f.process.wait(0ms).has_value());  // still running
}

// Without --config there is nothing to read again: the demo, and services given as flags.
BOOST_AUTO_TEST_CASE(without_a_config_file_there_is_nothing_to_reload) {
    echo_upstream a;
    for (auto const& args :
         {std::vector<std::string>{"--listen", "127.0.0.1:0", "--threads", "2"},
          std::vector<std::string>{"--listen", "127.0.0.1:0", "--upstream", "svc=" + a.url("/x")}}) {
        reloading_fanout f{args};
        auto const e = f.reload();
        BOOST_TEST(!e.at("reloaded").as_bool());
        BOOST_TEST(std::string(e.at("message").as_string()).find("nothing to reload") != std::string::npos);
        BOOST_TEST(get(f.port, "/api/aggregate/wg").status == 200u);
    }
}

// An invalid file changes nothing; its error is the one --check gives. A valid one then applies.
BOOST_AUTO_TEST_CASE(an_invalid_file_keeps_the_configuration_in_use) {
    echo_upstream a, b;
    auto const valid = [&](std::string const& url) {
        return R"({"listen": "127.0.0.1:0", "upstreams": [)" + service_json("svc", url) + "]}";
    };
    config_file config{valid(a.url("/a"))};
    auto const garbage = config.write("garbage.pem", "not a certificate\n");
    reloading_fanout f{{"--config", config.path()}};
    for (auto const& bad :
         {R"({"upstreams": [)" +
              service_json("svc", "https://127.0.0.1:1/b", R"(, "ca_file": ")" + garbage + "\"") + "]}",
          R"({"listen": "127.0.0.1:0", "upstreams": [)" + service_json("svc", b.url("/b")) +
              R"(], "routes": [)" + route("/api/r", "wg", R"({"service": "nobody"})") + "]}",
          R"({"upstreams": [)" + service_json("svc", b.url("/b")) + R"(], "timeout_ms": })",
          R"({"upstreams": [)" + service_json("svc", b.url("/b"), R"(, "max_retries": 99)") + "]}",
          std::string(R"({"upstreams": []})")}) {
        config.rewrite(bad);
        auto const expected = check_error(config);
        auto const e = f.reload();
        BOOST_TEST(!e.at("reloaded").as_bool());
        BOOST_TEST(e.at("level").as_string() == "error");
        BOOST_TEST(e.at("error").as_string() == expected);
        auto const still = get(f.port, "/api/aggregate/wg");
        BOOST_TEST(still.status == 200u);
        BOOST_TEST(echoed_target(still, "svc") == "/a");
    }
    BOOST_TEST(b.counters().requests == 0u);
    config.rewrite(valid(b.url("/b")));
    BOOST_TEST(f.reload().at("reloaded").as_bool());
    BOOST_TEST(echoed_target(get(f.port, "/api/aggregate/wg"), "svc") == "/b");
}

// The listen address and the thread count keep their values until a restart, and the event says
// so; the rest of the file applies.
BOOST_AUTO_TEST_CASE(settings_only_a_restart_changes_are_reported_and_kept) {
    echo_upstream a;
    auto const file = [&](std::string const& listen, std::string const& admin, int threads, int timeout) {
        return R"({"listen": ")" + listen + R"(", "admin_listen": ")" + admin + R"(", "threads": )" +
               std::to_string(threads) + R"(, "timeout_ms": )" + std::to_string(timeout) +
               R"(, "upstreams": [)" + service_json("slow", a.url("/sleep/300")) + ", " +
               service_json("fast", a.url("/x")) + "]}";
    };
    config_file config{file("127.0.0.1:0", "127.0.0.1:0", 2, 1000)};
    reloading_fanout f{{"--config", config.path()}};
    auto const other = closed_port();
    auto const other_admin =
        static_cast<std::uint16_t>(other == 65535 ? other - 1 : other + 1);  // never bound
    config.rewrite(
        file("127.0.0.1:" + std::to_string(other), "127.0.0.1:" + std::to_string(other_admin), 3, 100)
    );
    auto const e = f.reload();
    BOOST_TEST(e.at("reloaded").as_bool());
    BOOST_TEST(e.at("level").as_string() == "warning");
    BOOST_TEST(strings(e.at("restart_required")) == (names{"listen", "admin_listen", "threads"}));
    BOOST_TEST(strings(e.at("settings")) == names{"timeout_ms"});
    // Still on its port, not on the new one; the new deadline (100 ms) cuts the 300 ms upstream short.
    auto const cut = get(f.port, "/api/aggregate/channel-with-context-timeout");
    BOOST_TEST(cut.status == 200u);
    BOOST_TEST(cut.complete_header == "false");
    BOOST_TEST(refuses_connections(other));
}

// The access log and the admin listener (its limits, its /config) follow a reload.
BOOST_AUTO_TEST_CASE(the_access_log_and_the_admin_config_follow_a_reload) {
    echo_upstream a;
    auto const file = [&](bool access_log, int timeout) {
        return R"({"listen": "127.0.0.1:0", "admin_listen": "127.0.0.1:0", "access_log": )" +
               std::string(access_log ? "true" : "false") + R"(, "timeout_ms": )" + std::to_string(timeout) +
               R"(, "upstreams": [)" + service_json("svc", a.url("/x")) + "]}";
    };
    config_file config{file(false, 1000)};
    reloading_fanout f{{"--config", config.path()}};
    auto const start = f.event("start");
    BOOST_TEST_REQUIRE(start.has_value());
    std::string const admin(start->at("admin").as_string());
    auto const admin_port = static_cast<std::uint16_t>(std::stoi(admin.substr(admin.rfind(':') + 1)));
    BOOST_TEST(get(f.port, "/api/aggregate/wg").status == 200u);  // no access line: off

    config.rewrite(file(true, 900));
    auto const e = f.reload();
    auto changed = strings(e.at("settings"));
    std::sort(changed.begin(), changed.end());
    BOOST_TEST(changed == (names{"access_log", "timeout_ms"}));
    BOOST_TEST(get(f.port, "/api/aggregate/wg").status == 200u);
    auto const line = f.event("access");
    BOOST_TEST_REQUIRE(line.has_value());
    BOOST_TEST(line->at("path").as_string() == "/api/aggregate/wg");
    auto const shown = fetch(admin_port, "/config");
    BOOST_TEST_REQUIRE(shown.has_value());
    auto const now = json::parse(shown->body());
    BOOST_TEST(now.at("timeout_ms").as_int64() == 900);
    BOOST_TEST(now.at("access_log").as_bool());
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

// One http_server with its own event loop (one, so that which loop a request lands on never
// matters) over the given services.
class one_server {
  public:
    explicit one_server(options opts) : opts_(std::move(opts)) {
        opts_.listen_host = "127.0.0.1";
        opts_.listen_port = 0;
        if (!opts_.logger && !opts_.on_event) {
            opts_.logger =
                std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::null_sink_mt>());
            opts_.logger->set_level(spdlog::level::off);
        }
        server_ = std::make_unique<http_server>(ioc_.get_executor(), opts_);
        server_->async_run([this](boost::system::error_code) { stopped_.set_value(); });
        thread_ = std::thread([this] { ioc_.run(); });
    }
    ~one_server() {
        server_->cancel();
        BOOST_TEST((stopped_.get_future().wait_for(10s) == std::future_status::ready));
        thread_.join();
    }

    std::uint16_t port() const { return server_->local_endpoint().port(); }
    options const& opts() const { return opts_; }
    http_server& server() { return *server_; }
    // Reloads, and returns once the server has switched.
    void reload(options next) { server_->async_reload(std::move(next), net::use_future).get(); }

  private:
    options opts_;
    net::io_context ioc_{1};
    std::unique_ptr<http_server> server_;
    std::promise<void> stopped_;
    std::thread thread_;
};

options with_upstreams(std::vector<service> upstreams) {
    options o;
    o.upstreams = std::move(upstreams);
    return o;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(test_reload_api)

// async_reload on every server of a harness (FANOUT_TEST_THREADS loops): a request in flight keeps
// its upstream, new ones take the new one; an invalid configuration throws and changes nothing;
// the listening settings stay the server's.
BOOST_AUTO_TEST_CASE(every_loop_switches_and_requests_in_flight_finish_as_they_began) {
    echo_upstream a, b;
    harness h{{}, {}, {make_service("svc", a.url("/sleep/400"))}};
    auto slow = get_apart(h.port(), "/api/aggregate/wg");
    BOOST_TEST_REQUIRE(eventually([&] { return a.counters().requests == 1; }));
    // A keep-alive connection opened before the reload: its next request takes the new configuration.
    blocking_client kept{h.port()};
    kept.send_get("/api/aggregate/errgroup?timeout_ms=5000");
    auto const before = kept.read();
    BOOST_TEST_REQUIRE(before.has_value());
    BOOST_TEST(json::parse(before->body()).at("results").at("svc").at("target").as_string() == "/sleep/400");

    auto next = with_upstreams({make_service("svc", b.url("/b"))});
    next.listen_port = closed_port();  // the server's own listening settings stay
    for (std::size_t i = 0; i < h.threads(); ++i) h.server(i).async_reload(next, net::use_future).get();
    for (int i = 0; i < 4; ++i) BOOST_TEST(echoed_target(get(h.port(), "/api/aggregate/wg"), "svc") == "/b");
    kept.send_get("/api/aggregate/errgroup");
    auto const after = kept.read();
    BOOST_TEST_REQUIRE(after.has_value());
    BOOST_TEST(json::parse(after->body()).at("results").at("svc").at("target").as_string() == "/b");
    auto const old = answer_of(slow);
    BOOST_TEST(old.status == 200u);
    BOOST_TEST(echoed_target(old, "svc") == "/sleep/400");

    auto bad = next;
    bad.routes = {{.path = "/api/r", .pattern = pattern::wg, .backends = {{.service = "nobody"}}}};
    BOOST_CHECK_THROW(h.server(0).async_reload(bad, net::use_future), std::invalid_argument);
    BOOST_TEST(echoed_target(get(h.port(), "/api/aggregate/wg"), "svc") == "/b");
    BOOST_TEST(a.counters().requests == 2u);
}

// A service left as it was keeps its pooled connection and its circuit breaker; one that changed
// starts afresh, its idle connection closed at the switch; a removed one's counters stay in the
// metrics, its breaker gauge goes.
BOOST_AUTO_TEST_CASE(unchanged_services_keep_their_state) {
    echo_upstream a;
    auto down = make_service("down", "http://127.0.0.1:" + std::to_string(closed_port()) + "/x");
    down.breaker_failures = 1;
    down.breaker_cooldown = std::chrono::minutes(1);
    auto const keep = make_service("keep", a.url("/k"));
    one_server s{with_upstreams({keep, down})};
    auto first = get(s.port(), "/api/aggregate/wg");
    BOOST_TEST(kind_of(first, "down") == "connect");  // and the circuit opens
    BOOST_TEST(a.counters().connections == 1u);

    auto next = s.opts();
    next.timeout = std::chrono::milliseconds(900);  // a setting of no service
    s.reload(next);
    auto second = get(s.port(), "/api/aggregate/wg");
    BOOST_TEST(kind_of(second, "keep") == "ok");
    BOOST_TEST(kind_of(second, "down") == "circuit_open");
    BOOST_TEST(a.counters().connections == 1u);  // the pooled one, reused
    BOOST_TEST(a.counters().closed == 0u);

    next.upstreams[0] = make_service("keep", a.url("/k2"));  // changed: a new state
    next.upstreams[1].breaker_cooldown = std::chrono::minutes(2);
    s.reload(next);
    BOOST_TEST(eventually([&] { return a.counters().closed == 1; }));  // the idle one, at the switch
    auto third = get(s.port(), "/api/aggregate/wg");
    BOOST_TEST(echoed_target(third, "keep") == "/k2");
    BOOST_TEST(kind_of(third, "down") == "connect");  // a breaker of its own, closed
    BOOST_TEST(a.counters().connections == 2u);

    next.upstreams.pop_back();  // "down" removed
    s.reload(next);
    auto const page = fetch(s.port(), "/metrics")->body();
    BOOST_TEST(metric(page, R"(fanout_upstream_failures_total{service="down",kind="connect"})") == 2);
    BOOST_TEST(metric(page, R"(fanout_upstream_circuit_open_total{service="down"})") == 1);
    BOOST_TEST(metric(page, R"(fanout_upstream_breaker_state{service="down",loop="0",state="open"})") == -1);
    BOOST_TEST(metric(page, R"(fanout_upstream_breaker_state{service="keep",loop="0",state="closed"})") == 1);
}

// A changed service's idle pooled connection is closed at the switch, while a request that began
// before (and holds the old configuration) still runs; that request's own connection, to a
// service that changed too, is closed when its fetch ends instead of pooled.
BOOST_AUTO_TEST_CASE(a_changed_service_closes_its_idle_connections_at_the_switch) {
    echo_upstream a, b;
    one_server s{
        with_upstreams({make_service("fast", a.url("/f")), make_service("slow", b.url("/sleep/5000"))})};
    auto held = get_apart(s.port(), "/api/aggregate/wg");
    BOOST_TEST_REQUIRE(eventually([&] { return a.counters().requests == 1 && b.counters().requests == 1; }));
    auto next = s.opts();
    next.upstreams = {make_service("fast", a.url("/f2")), make_service("slow", b.url("/sleep/1"))};
    s.reload(next);
    BOOST_TEST(eventually([&] { return a.counters().closed == 1; }));
    // Showing that the close did not wait for the old configuration's last request takes a bound: 5 s.
    BOOST_TEST((held.wait_for(0s) == std::future_status::timeout));
    BOOST_TEST(b.counters().closed == 0u);  // in use
    auto const old = answer_of(held);
    BOOST_TEST(echoed_target(old, "slow") == "/sleep/5000");
    BOOST_TEST(eventually([&] { return b.counters().closed == 1; }));
    BOOST_TEST(echoed_target(get(s.port(), "/api/aggregate/wg"), "slow") == "/sleep/1");
    BOOST_TEST(b.counters().connections == 2u);
}

// A route's series continue across reloads that keep it, and stay (unchanging) once it is gone.
BOOST_AUTO_TEST_CASE(request_series_of_removed_routes_stay) {
    echo_upstream a;
    auto opts = with_upstreams({make_service("svc", a.url("/x"))});
    opts.routes = {
        {.path = "/api/one", .pattern = pattern::wg, .backends = {{.service = "svc"}}},
        {.path = "/api/two", .pattern = pattern::errgroup, .backends = {{.service = "svc"}}}};
    one_server s{opts};
    BOOST_TEST(get(s.port(), "/api/one").status == 200u);
    BOOST_TEST(get(s.port(), "/api/two").status == 200u);
    auto next = s.opts();
    next.routes.erase(next.routes.begin());
    next.routes.push_back(
        {.path = "/api/three", .pattern = pattern::channel, .backends = {{.service = "svc"}}}
    );
    s.reload(next);
    BOOST_TEST(get(s.port(), "/api/one").status == 404u);
    BOOST_TEST(get(s.port(), "/api/two").status == 200u);
    BOOST_TEST(get(s.port(), "/api/three").status == 200u);
    std::vector<std::pair<std::string, double>> const counts{
        {R"(fanout_requests_total{endpoint="wg",route="/api/one",code="200"})", 1},
        {R"(fanout_requests_total{endpoint="errgroup",route="/api/two",code="200"})", 2},
        {R"(fanout_requests_total{endpoint="channel",route="/api/three",code="200"})", 1},
        {R"(fanout_requests_total{endpoint="other",route="",code="404"})", 1}};
    auto const page = scrape_when(s.port(), counts);
    for (auto const& [series, value] : counts) BOOST_TEST(metric(page, series) == value, series);
}

// The mounted endpoints: reload() on the aggregator's executor.
BOOST_AUTO_TEST_CASE(aggregator_reload) {
    echo_upstream a, b;
    net::io_context ioc;
    aggregator agg{ioc.get_executor(), with_upstreams({make_service("svc", a.url("/a"))})};
    auto body_of = [&] {
        auto res = net::co_spawn(
            ioc, agg.handle(boost::beast::http::verb::get, "/api/aggregate/wg"), net::use_future
        );
        ioc.restart();
        ioc.run();
        return json::parse(res.get().body());
    };
    BOOST_TEST(body_of().at("results").at("svc").at("target").as_string() == "/a");
    agg.reload(with_upstreams({make_service("svc", b.url("/b"))}));
    BOOST_TEST(body_of().at("results").at("svc").at("target").as_string() == "/b");
    auto bad = with_upstreams({make_service("svc", b.url("/c"))});
    bad.routes = {{.path = "/api/r", .pattern = pattern::wg, .backends = {{.service = "nobody"}}}};
    BOOST_CHECK_THROW(agg.reload(bad), std::invalid_argument);
    BOOST_TEST(body_of().at("results").at("svc").at("target").as_string() == "/b");
}

BOOST_AUTO_TEST_SUITE_END()
