// fanout --check over the real executable (it must bind and start nothing, and fail as a start
// fails), the warnings about self-defeating settings, and the effective configuration it prints.

#include "server/command_line.hpp"
#include "server/config_dump.hpp"
#include "server/warnings.hpp"
#include "tests/paths.hpp"
#include "tests/process.hpp"
#include "tests/tls_certs.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <csignal>
#include <fanout/options.hpp>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <sys/wait.h>

using namespace fanout;
using namespace fanout::test;
using namespace std::chrono_literals;
namespace json = boost::json;
namespace net = boost::asio;

namespace {

finished_process run_fanout(std::vector<std::string> args) {
    args.insert(args.begin(), fanout::test_paths::fanout_binary);
    return run_to_end(std::move(args), 20s);
}

bool exited_with(finished_process const& p, int code) {
    return p.status && WIFEXITED(*p.status) && WEXITSTATUS(*p.status) == code;
}

std::vector<std::string> lines(std::string const& text) {
    std::vector<std::string> out;
    std::istringstream in{text};
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
}

// The plain-text error line of a failed start or check ("fanout: ..."), among JSON log lines.
std::string error_line(std::string const& err) {
    for (auto const& line : lines(err))
        if (line.rfind("fanout: ", 0) == 0) return line;
    return "";
}

std::string upstream_json(std::string const& extra = "") {
    return R"({"name": "users", "url": "http://127.0.0.1:9/users")" + extra + "}";
}

}  // namespace

BOOST_AUTO_TEST_SUITE(test_check)

// Everything is printed with its default; nothing is bound: the port stays ours all along.
BOOST_AUTO_TEST_CASE(a_good_config_is_printed_whole_and_nothing_is_bound) {
    net::io_context ioc;
    net::ip::tcp::acceptor held{ioc, {net::ip::make_address("127.0.0.1"), 0}};
    auto const number = held.local_endpoint().port();
    auto const port = std::to_string(number);
    config_file config{
        R"({"listen": "127.0.0.1:)" + port + R"(", "threads": 1, "timeout_ms": 700,
            "upstreams": [)" +
        upstream_json(R"(, "timeout_ms": 300)") + "]}"};

    auto const checked = run_fanout({"--check", "--config", config.path()});
    BOOST_TEST(exited_with(checked, 0), checked.err);
    BOOST_TEST(checked.err.empty(), checked.err);
    auto const printed = json::parse(checked.out).as_object();
    BOOST_TEST(printed.at("listen").as_string() == "127.0.0.1:" + port);
    BOOST_TEST(printed.at("timeout_ms").as_int64() == 700);
    BOOST_TEST(printed.at("max_request_head").as_int64() == 8192);  // defaults
    BOOST_TEST(printed.at("log_level").as_string() == "info");
    auto const& users = printed.at("upstreams").as_array().at(0).as_object();
    BOOST_TEST(users.at("url").as_string() == "http://127.0.0.1:9/users");
    BOOST_TEST(users.at("timeout_ms").as_int64() == 300);
    BOOST_TEST(users.at("breaker_cooldown_ms").as_int64() == 5000);
    BOOST_TEST(users.at("retry_budget").as_double() == 0.2);
    BOOST_TEST(users.at("hedge_after_ms").is_null());

    // A start with the same file does bind, and so fails on the port held.
    auto const started = run_fanout({"--config", config.path()});
    BOOST_TEST(exited_with(started, 1), started.err);
    BOOST_TEST(error_line(started.err).find("cannot listen on 127.0.0.1:" + port) != std::string::npos);
    held.close();
    net::ip::tcp::acceptor again{ioc, {net::ip::make_address("127.0.0.1"), number}};
}

// What --check prints is a configuration file meaning the same: checked again, it prints the same.
BOOST_AUTO_TEST_CASE(the_printed_configuration_is_a_valid_one) {
    test_pki pki;
    config_file config{
        R"({"listen": "[::1]:0", "upstream_pool_size": 4, "upstreams": [)" +
        upstream_json(R"(, "hedge_quantile": 0.95, "hedge_budget": 0.05, "max_retries": 2)") +
        R"(, {"name": "billing", "url": "https://127.0.0.1:8443/v1/{id}?q={q}", "ca_file": ")" +
        pki.ca_cert() + R"(", "server_name": "upstream.test"}]})"};
    auto const first = run_fanout({"--check", "--config", config.path()});
    BOOST_TEST_REQUIRE(exited_with(first, 0), first.err);
    auto const printed = json::parse(first.out).as_object();
    auto const& billing = printed.at("upstreams").as_array().at(1).as_object();
    BOOST_TEST(billing.at("ca_file").as_string() == pki.ca_cert());  // the path, not the file
    BOOST_TEST(billing.at("client_cert").is_null());
    BOOST_TEST(billing.at("url").as_string() == "https://127.0.0.1:8443/v1/{id}?q={q}");
    BOOST_TEST(first.out.find("0.05") != std::string::npos);  // not 5E-2

    auto const again_path = config.write("printed.json", first.out);
    auto const second = run_fanout({"--check", "--config", again_path});
    BOOST_TEST(exited_with(second, 0), second.err);
    BOOST_TEST(second.out == first.out);
}

// An error is the start's own: the same line on stderr, the same exit code, nothing on stdout.
BOOST_AUTO_TEST_CASE(a_bad_config_fails_as_a_start_does) {
    config_file files{"{}"};
    auto const garbage = files.write("garbage.pem", "not a certificate\n");
    struct bad_case {
        std::string text;
        int code;
        std::string says;
    };
    std::vector<bad_case> const cases{
        {R"({"upstreams": [)" + upstream_json(R"(, "retries": 1)") + "]}", 2,
         "upstreams[0].retries: unknown key"},
        {R"({"timeout_ms": 20000, "upstreams": [)" + upstream_json() + "]}", 2,
         "timeout_ms: 20000 must not exceed"},
        {R"({"listen": "example.invalid:80", "upstreams": [)" + upstream_json() + "]}", 2, "listen: "},
        {R"({"threads": 2, "upstreams": []})", 2, "no upstreams"},
        {"{\n  \"threads\": 2,\n  \"timeout_ms\" 5\n}", 2, "line 3, column 16"},
        // Unreadable: refused as the file is read. Unparseable: refused as the client loads it.
        {R"({"upstreams": [{"name": "b", "url": "https://127.0.0.1:8443/", "ca_file": "/nonexistent/ca.pem"}]})",
         2, "upstreams[0].ca_file: cannot read '/nonexistent/ca.pem'"},
        {R"({"upstreams": [{"name": "b", "url": "https://127.0.0.1:8443/", "ca_file": ")" + garbage +
             R"("}]})",
         1, "service 'b': ca_file '" + garbage + "'"},
    };
    for (auto const& c : cases) {
        auto const path = files.write("bad.json", c.text);
        auto const started = run_fanout({"--listen", "127.0.0.1:0", "--config", path});
        auto const checked = run_fanout({"--check", "--listen", "127.0.0.1:0", "--config", path});
        BOOST_TEST(exited_with(started, c.code), c.says << ": " << started.err);
        BOOST_TEST(exited_with(checked, c.code), c.says << ": " << checked.err);
        BOOST_TEST(error_line(checked.err).find(c.says) != std::string::npos, checked.err);
        BOOST_TEST(error_line(checked.err) == error_line(started.err));
        BOOST_TEST(checked.out.empty(), checked.out);
    }
}

// Legal but self-defeating: warned on stderr, still exit 0 and the configuration printed.
BOOST_AUTO_TEST_CASE(self_defeating_settings_are_warnings) {
    config_file config{
        R"({"max_timeout_ms": 2000, "upstreams": [)" +
        upstream_json(R"(, "timeout_ms": 3000, "breaker_failures": 2, "max_retries": 1)") + "]}"};
    auto const checked = run_fanout({"--check", "--config", config.path()});
    BOOST_TEST(exited_with(checked, 0), checked.err);
    BOOST_TEST(json::parse(checked.out).is_object());
    std::vector<std::string> const expected{
        "warning: upstreams[0].timeout_ms: 3000 is above max_timeout_ms (2000): on context-timeout and "
        "errgroup a request's deadline, at most that, always ends first; it bounds wg and channel only",
        "warning: upstreams[0].breaker_failures: 2 is not above max_retries + 1 (2): each retry counts as "
        "a failure, so one failing fetch opens the circuit of 'users'"};
    BOOST_TEST(lines(checked.err) == expected, boost::test_tools::per_element());
}

// At start each warning is logged once, as an event, and the start event lists them.
BOOST_AUTO_TEST_CASE(a_start_logs_each_warning_once) {
    config_file config{
        R"({"listen": "127.0.0.1:0", "threads": 2, "max_timeout_ms": 2000, "upstreams": [)" +
        upstream_json(R"(, "timeout_ms": 3000)") + "]}"};
    child_process f{
        {"/bin/sh", "-c", "exec \"$0\" \"$@\" 2>&1", fanout::test_paths::fanout_binary, "--config",
         config.path()}};
    std::vector<json::object> warnings;
    std::optional<json::object> start;
    while (!start) {
        auto line = f.read_line_starting("{", 10s);
        BOOST_TEST_REQUIRE(line.has_value());
        auto v = json::parse(*line).as_object();
        if (v.at("event").as_string() == "config_warning") warnings.push_back(v);
        if (v.at("event").as_string() == "start") start = v;
    }
    BOOST_TEST_REQUIRE(warnings.size() == 1u);
    BOOST_TEST(warnings[0].at("level").as_string() == "warning");
    auto const message = warnings[0].at("message").as_string();
    BOOST_TEST(message.starts_with("upstreams[0].timeout_ms: 3000 is above max_timeout_ms (2000)"));
    auto const& listed = start->at("warnings").as_array();
    BOOST_TEST_REQUIRE(listed.size() == 1u);
    BOOST_TEST(listed[0].as_string() == message);
    f.signal(SIGTERM);
    auto const status = f.wait(5s);
    BOOST_TEST_REQUIRE(status.has_value());
    BOOST_TEST(WEXITSTATUS(*status) == 0);
}

// A host that does not resolve is a warning of --check, which waits for it 2 s at most.
BOOST_AUTO_TEST_CASE(a_host_that_does_not_resolve_is_a_warning) {
    config_file config{
        R"({"upstreams": [)" + upstream_json() +
        R"(, {"name": "gone", "url": "http://fanout-check.invalid:8080/x"}]})"};
    auto const start = std::chrono::steady_clock::now();
    auto const checked = run_fanout({"--check", "--config", config.path()});
    BOOST_TEST((std::chrono::steady_clock::now() - start < 10s));  // 2 s, and a busy machine
    BOOST_TEST(exited_with(checked, 0), checked.err);
    auto const warnings = lines(checked.err);
    BOOST_TEST_REQUIRE(warnings.size() == 1u, checked.err);
    BOOST_TEST(warnings[0].starts_with("warning: upstreams[1].url: 'fanout-check.invalid' d"), warnings[0]);
    BOOST_TEST(json::parse(checked.out).at("upstreams").as_array().size() == 2u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(test_warnings)

fanout::options with(fanout::service s, fanout::options o = {}) {
    o.upstreams.push_back(std::move(s));
    return o;
}

fanout::service service(std::string_view url = "http://127.0.0.1:9/users") {
    return fanout::make_service("users", url);
}

BOOST_AUTO_TEST_CASE(none_for_the_defaults_and_the_example) {
    BOOST_TEST(fanout::config_warnings(with(service())).empty());
    auto example = with(service());
    example.upstreams.push_back(fanout::make_service("orders", "https://10.0.0.7/orders"));
    example.upstreams.back().timeout = 300ms;
    example.upstreams.back().tls->ca_file = "/etc/fanout/ca.pem";
    BOOST_TEST(fanout::config_warnings(example).empty());
}

BOOST_AUTO_TEST_CASE(no_upstreams_is_the_demo) {
    auto const w = fanout::config_warnings({});
    BOOST_TEST_REQUIRE(w.size() == 1u);
    BOOST_TEST(w[0].starts_with("upstreams: none given: the embedded demo services answer"));
}

// A fetch whose every attempt failed is max_retries + 1 failures for the breaker.
BOOST_AUTO_TEST_CASE(a_breaker_that_one_failing_fetch_opens) {
    auto s = service();
    s.max_retries = 2;
    s.breaker_failures = 3;
    auto const w = fanout::config_warnings(with(s));
    BOOST_TEST_REQUIRE(w.size() == 1u);
    BOOST_TEST(
        w[0] ==
        "upstreams[0].breaker_failures: 3 is not above max_retries + 1 (3): each retry counts as a failure, "
        "so one failing fetch opens the circuit of 'users'"
    );
    s.breaker_failures = 4;
    BOOST_TEST(fanout::config_warnings(with(s)).empty());
    s.breaker_failures = 1;  // without retries, a breaker at 1 is a choice
    s.max_retries = 0;
    BOOST_TEST(fanout::config_warnings(with(s)).empty());
}

BOOST_AUTO_TEST_CASE(a_service_timeout_above_the_deadline_cap) {
    fanout::options o;
    o.max_timeout = 2000ms;
    auto s = service();
    s.timeout = 2000ms;
    BOOST_TEST(fanout::config_warnings(with(s, o)).empty());
    s.timeout = 2001ms;
    auto const w = fanout::config_warnings(with(s, o));
    BOOST_TEST_REQUIRE(w.size() == 1u);
    BOOST_TEST(w[0].starts_with("upstreams[0].timeout_ms: 2001 is above max_timeout_ms (2000)"));
}

BOOST_AUTO_TEST_CASE(a_service_timeout_above_max_fetch) {
    fanout::options o;
    o.max_timeout = 100000ms;
    o.max_fetch = 5000ms;
    auto s = service();
    s.timeout = 5000ms;
    BOOST_TEST(fanout::config_warnings(with(s, o)).empty());
    s.timeout = 5001ms;
    auto const w = fanout::config_warnings(with(s, o));
    BOOST_TEST_REQUIRE(w.size() == 1u);
    BOOST_TEST(
        w[0] ==
        "upstreams[0].timeout_ms: 5001 is above max_fetch_ms (5000): every fetch ends at max_fetch_ms first"
    );
}

BOOST_AUTO_TEST_CASE(a_hedge_after_the_timeout_or_without_budget) {
    auto s = service();
    s.timeout = 100ms;
    s.hedge_after = 99ms;
    BOOST_TEST(fanout::config_warnings(with(s)).empty());
    s.hedge_after = 100ms;
    auto w = fanout::config_warnings(with(s));
    BOOST_TEST_REQUIRE(w.size() == 1u);
    BOOST_TEST(w[0].starts_with("upstreams[0].hedge_after_ms: 100 is not below timeout_ms (100)"));
    s = service();
    s.hedge_quantile = 0.9;
    s.hedge_budget = 0;
    w = fanout::config_warnings(with(s));
    BOOST_TEST_REQUIRE(w.size() == 1u);
    BOOST_TEST(w[0] == "upstreams[0].hedge_budget: 0 allows no hedge: hedge_quantile has no effect");
}

BOOST_AUTO_TEST_CASE(retries_that_cannot_happen) {
    auto s = service();
    s.max_retries = 1;
    s.retry_budget = 0;
    s.retry_min_per_s = 0;
    auto w = fanout::config_warnings(with(s));
    BOOST_TEST_REQUIRE(w.size() == 1u);
    BOOST_TEST(w[0].starts_with("upstreams[0].max_retries: 1, but retry_budget and retry_min_per_s are 0"));
    s = service();
    s.max_retries = 1;
    s.timeout = 50ms;
    s.retry_backoff = 50ms;
    w = fanout::config_warnings(with(s));
    BOOST_TEST_REQUIRE(w.size() == 1u);
    BOOST_TEST(w[0].starts_with("upstreams[0].retry_backoff_ms: 50 is not below timeout_ms (50)"));
    s.max_retries = 0;  // no retries: the backoff is unused
    BOOST_TEST(fanout::config_warnings(with(s)).empty());
}

BOOST_AUTO_TEST_CASE(tls_off_and_the_other_scheme_s_port) {
    auto s = service("https://10.0.0.9:8443/");
    s.tls->insecure_skip_verify = true;
    auto w = fanout::config_warnings(with(s));
    BOOST_TEST_REQUIRE(w.size() == 1u);
    BOOST_TEST(w[0].starts_with("upstreams[0].insecure_skip_verify: the certificate and name of 10.0.0.9:8443"
    ));
    w = fanout::config_warnings(with(service("http://api.example:443/")));
    BOOST_TEST_REQUIRE(w.size() == 1u);
    BOOST_TEST(w[0].starts_with("upstreams[0].url: http:// to port 443"));
    w = fanout::config_warnings(with(service("https://api.example:80/")));
    BOOST_TEST_REQUIRE(w.size() == 1u);
    BOOST_TEST(w[0].starts_with("upstreams[0].url: https:// to port 80"));
}

BOOST_AUTO_TEST_CASE(no_idle_connection_kept) {
    fanout::options o;
    o.upstream_pool_size = 0;
    auto const w = fanout::config_warnings(with(service(), o));
    BOOST_TEST_REQUIRE(w.size() == 1u);
    BOOST_TEST(w[0].starts_with("upstream_pool_size: 0 keeps no connection"));
}

// Each warning names the index of the service it concerns.
BOOST_AUTO_TEST_CASE(the_service_at_fault_is_named_by_its_index) {
    auto bad = service();
    bad.max_retries = 1;
    bad.breaker_failures = 1;
    auto o = with(service());
    o.upstreams.push_back(bad);
    auto const w = fanout::config_warnings(o);
    BOOST_TEST_REQUIRE(w.size() == 1u);
    BOOST_TEST(w[0].starts_with("upstreams[1].breaker_failures: "));
}

BOOST_AUTO_TEST_CASE(ip_literals_are_not_looked_up) {
    auto o = with(service("http://[::1]:9/"));
    o.upstreams.push_back(fanout::make_service("b", "http://127.0.0.1:9/"));
    BOOST_TEST(fanout::resolution_warnings(o, 2s).empty());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(test_describe)

// Every setting of the configuration file is there: the flags of --help, in snake_case.
BOOST_AUTO_TEST_CASE(every_setting_is_described) {
    std::vector<char const*> args{"fanout", "--help"};
    auto const help = fanout::parse_command_line(2, args.data()).help;
    std::set<std::string> settings{"upstreams"};
    for (auto at = help.find("  --"); at != std::string::npos; at = help.find("  --", at + 1)) {
        auto flag = help.substr(at + 4, help.find_first_of(" \n", at + 4) - at - 4);
        if (flag == "config" || flag == "upstream" || flag == "help" || flag == "version" || flag == "check")
            continue;
        std::replace(flag.begin(), flag.end(), '-', '_');
        settings.insert(flag);
    }
    std::set<std::string> described;
    auto const printed = json::parse(fanout::describe({}));
    for (auto const& [key, value] : printed.as_object()) described.insert(key);
    BOOST_TEST(described == settings, boost::test_tools::per_element());
}

// Each key of an upstream, set to a value other than its default, comes back as it was given.
BOOST_AUTO_TEST_CASE(every_upstream_key_is_described) {
    test_pki pki;
    json::object given{
        {"name", "billing"},
        {"url", "https://10.0.0.9:8443/v1?id={id}"},
        {"timeout_ms", 300},
        {"breaker_failures", 5},
        {"breaker_cooldown_ms", 3000},
        {"hedge_after_ms", 20},
        {"hedge_quantile", 0.9},
        {"hedge_budget", 0.05},
        {"max_retries", 2},
        {"retry_backoff_ms", 15},
        {"retry_budget", 0.1},
        {"retry_min_per_s", 3},
        {"ca_file", pki.ca_cert()},
        {"client_cert", pki.client_cert()},
        {"client_key", pki.client_key()},
        {"server_name", "billing.internal"},
        {"insecure_skip_verify", false},
        {"tls_handshake_timeout_ms", 2000}};
    fanout::options o;
    fanout::apply_config(o, json::serialize(json::object{{"upstreams", json::array{given}}}));
    auto const described = json::parse(fanout::describe(o)).at("upstreams").at(0).as_object();
    BOOST_TEST(json::serialize(described) == json::serialize(given));
}

BOOST_AUTO_TEST_CASE(an_ipv6_listen_address_is_in_brackets) {
    fanout::options o;
    o.listen_host = "::1";
    o.listen_port = 8080;
    BOOST_TEST(json::parse(fanout::describe(o)).at("listen").as_string() == "[::1]:8080");
}

// null is how --check prints a setting that is off: as a value, it leaves it off.
BOOST_AUTO_TEST_CASE(null_leaves_an_optional_setting_off) {
    fanout::options o;
    fanout::apply_config(
        o, R"({"upstreams": [{"name": "a", "url": "https://h/", "timeout_ms": null, "hedge_after_ms": null,
               "hedge_quantile": null, "ca_file": null, "client_cert": null, "client_key": null,
               "server_name": null}]})"
    );
    BOOST_TEST(!o.upstreams.at(0).timeout.has_value());
    BOOST_TEST(o.upstreams.at(0).tls->ca_file.empty());
    BOOST_CHECK_THROW(
        fanout::apply_config(o, R"({"upstreams": [{"name": "a", "url": "http://h/", "ca_file": null}]})"),
        std::invalid_argument
    );
    BOOST_CHECK_THROW(
        fanout::apply_config(o, R"({"upstreams": [{"name": "a", "url": "http://h/", "max_retries": null}]})"),
        std::invalid_argument
    );
}

BOOST_AUTO_TEST_SUITE_END()
