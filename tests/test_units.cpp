#include "handlers/request.hpp"
#include "server/command_line.hpp"
#include "server/config_dump.hpp"
#include "server/router.hpp"
#include "sim/simulator.hpp"
#include "tests/paths.hpp"
#include "upstream/json_validate.hpp"

#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <array>
#include <fanout/options.hpp>
#include <fanout/service.hpp>
#include <fstream>
#include <set>
#include <sstream>
#include <unistd.h>

using namespace fanout;
using namespace std::chrono_literals;
namespace json = boost::json;

BOOST_AUTO_TEST_SUITE(test_service)

BOOST_AUTO_TEST_CASE(parses_name_and_url) {
    auto s = fanout::parse_service("users=http://127.0.0.1:9101/v1/users?active=1");
    BOOST_TEST(s.name == "users");
    BOOST_TEST(s.host == "127.0.0.1");
    BOOST_TEST(s.port == 9101);
    BOOST_TEST(s.target == "/v1/users?active=1");
    BOOST_TEST(s.host_header == "127.0.0.1:9101");
}

BOOST_AUTO_TEST_CASE(defaults_port_and_path) {
    auto s = fanout::parse_service("a=http://example.internal");
    BOOST_TEST(s.port == 80);
    BOOST_TEST(s.target == "/");
    auto v6 = fanout::parse_service("b=http://[::1]:81/x");
    BOOST_TEST(v6.host == "::1");
    BOOST_TEST(v6.host_header == "[::1]:81");
    BOOST_TEST(!v6.tls.has_value());
    auto const secure = fanout::parse_service("s=https://api.example/v1");
    BOOST_TEST(secure.tls.has_value());
    BOOST_TEST(secure.port == 443);
    BOOST_TEST(secure.host_header == "api.example");
    BOOST_TEST(secure.url() == "https://api.example/v1");
}

BOOST_AUTO_TEST_CASE(rejects_bad_specs) {
    for (auto spec :
         {"nourl", "=http://h/", "a=ftp://h/", "a=https://u:p@h/", "a=http://u:p@h/", "a=http://h:0/",
          "a=http://h:99999/", "a=/relative", "bad name=http://h/"}) {
        BOOST_CHECK_THROW(fanout::parse_service(spec), std::invalid_argument);
    }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(test_parse_timeout)

BOOST_AUTO_TEST_CASE(absent_gives_default) {
    auto t = fanout::parse_timeout(std::nullopt, 1000ms, 10000ms);
    BOOST_TEST(std::get<std::chrono::milliseconds>(t).count() == 1000);
}

BOOST_AUTO_TEST_CASE(positive_integers_are_capped) {
    BOOST_TEST(
        std::get<std::chrono::milliseconds>(fanout::parse_timeout("250", 1000ms, 10000ms)).count() == 250
    );
    BOOST_TEST(
        std::get<std::chrono::milliseconds>(fanout::parse_timeout("50000", 1000ms, 10000ms)).count() == 10000
    );
    auto huge = fanout::parse_timeout("99999999999999999999999", 1000ms, 10000ms);
    BOOST_TEST(std::get<std::chrono::milliseconds>(huge).count() == 10000);
}

BOOST_AUTO_TEST_CASE(anything_else_is_an_error) {
    for (auto bad : {"", "0", "-5", "+5", "abc", "1.5", "10ms", " 10", "0x10"})
        BOOST_TEST(std::holds_alternative<std::string>(fanout::parse_timeout(bad, 1000ms, 10000ms)), bad);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(test_json_validate)

BOOST_AUTO_TEST_CASE(accepts_one_value) {
    for (auto ok : {"{}", "[]", " {\"a\": [1, 2.5, true, null, \"x\"]}\n", "42", "\"s\""})
        BOOST_TEST(fanout::is_valid_json(ok), ok);
}

BOOST_AUTO_TEST_CASE(rejects_the_rest) {
    for (auto bad : {"", "{", "{\"a\":1,}", "{} {}", "[1,2,", "nul", "{'a':1}", "// c\n{}", "<html>"})
        BOOST_TEST(!fanout::is_valid_json(bad), bad);
}

BOOST_AUTO_TEST_CASE(rejects_too_deep_nesting) {
    std::string deep(1000, '[');
    deep += std::string(1000, ']');
    BOOST_TEST(!fanout::is_valid_json(deep));
}

// The contract, case by case: what a body must be to be embedded in an answer as it came.
BOOST_AUTO_TEST_CASE(nesting_is_at_most_32_deep) {
    auto arrays = [](int depth) { return std::string(depth, '[') + std::string(depth, ']'); };
    auto objects = [](int depth) {
        std::string text;
        for (int i = 0; i < depth; ++i) text += R"({"k":)";
        return text + "1" + std::string(depth, '}');
    };
    BOOST_TEST(fanout::is_valid_json(arrays(32)));
    BOOST_TEST(!fanout::is_valid_json(arrays(33)));
    BOOST_TEST(fanout::is_valid_json(objects(32)));
    BOOST_TEST(!fanout::is_valid_json(objects(33)));
}

BOOST_AUTO_TEST_CASE(strings_are_valid_utf8) {
    BOOST_TEST(
        fanout::is_valid_json("[\"caf\xc3\xa9\", \"\xe2\x82\xac\", \"\xf0\x9f\x98\x80\", \"\xed\x9f\xbf\"]")
    );
    for (auto bad : {
             "\"\x80\"",              // a continuation byte alone
             "\"\xc3\"",              // a sequence cut short
             "\"\xc0\xaf\"",          // an overlong encoding of '/'
             "\"\xed\xa0\x80\"",      // a surrogate encoded as UTF-8
             "\"\xf4\x90\x80\x80\"",  // above U+10FFFF
             "\"\xff\"",
         })
        BOOST_TEST(!fanout::is_valid_json(bad), bad);
}

BOOST_AUTO_TEST_CASE(escaped_surrogates_come_in_pairs) {
    BOOST_TEST(fanout::is_valid_json(R"("\ud83d\ude00")"));
    BOOST_TEST(fanout::is_valid_json(R"("\u00e9\u20ac")"));
    BOOST_TEST(!fanout::is_valid_json(R"("\ud83d")"));        // a high surrogate alone
    BOOST_TEST(!fanout::is_valid_json(R"("\ude00")"));        // a low one alone
    BOOST_TEST(!fanout::is_valid_json(R"("\ud83d\u0041")"));  // followed by no low one
    BOOST_TEST(!fanout::is_valid_json(R"("\u12")"));
}

BOOST_AUTO_TEST_CASE(one_value_and_nothing_after_it_but_whitespace) {
    BOOST_TEST(fanout::is_valid_json(" \t\r\n{}\n "));
    for (auto bad : {"{}x", "{}}", "[] []", "1 2", "{},"}) BOOST_TEST(!fanout::is_valid_json(bad), bad);
    BOOST_TEST(!fanout::is_valid_json(std::string_view("{}\0", 3)));  // a NUL after the value
    BOOST_TEST(!fanout::is_valid_json(std::string_view("\0", 1)));
}

BOOST_AUTO_TEST_CASE(strict_rfc_8259) {
    for (auto bad : {
             "[1,]",
             "{\"a\":1,}",
             "// c\n{}",
             "/* c */ {}",
             "{a:1}",
             "['a']",
             "[NaN]",
             "[Infinity]",
             "[01]",
             "[1.]",
             "[.5]",
             "[+1]",
             "[0x10]",
             "[tru]",
             "[\"tab\there\"]",
             "[\"\\x41\"]",
         })
        BOOST_TEST(!fanout::is_valid_json(bad), bad);
    BOOST_TEST(fanout::is_valid_json("[-0, 0.5e-3, 1E+2, -12.34e5, 1e999999999]"));  // infinite: still JSON
}

BOOST_AUTO_TEST_CASE(duplicate_keys_are_accepted) {
    // RFC 8259 leaves them to the receiver; the body is passed on as it came, so they are its reader's.
    BOOST_TEST(fanout::is_valid_json(R"({"a":1,"a":2})"));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(test_render)

std::vector<fanout::service> three_services() {
    return {
        fanout::parse_service("users=http://h/u"), fanout::parse_service("orders=http://h/o"),
        fanout::parse_service("inventory=http://h/i")};
}

BOOST_AUTO_TEST_CASE(error_kinds_are_error_codes_and_none_is_success) {
    for (std::size_t i = 0; i < fanout::error_kind_count; ++i) {
        auto const kind = fanout::kind_at(i);
        boost::system::error_code ec = kind;
        BOOST_TEST(static_cast<bool>(ec));
        BOOST_TEST((ec == kind));
        BOOST_TEST(fanout::kind_index(kind) == i);
        BOOST_TEST(ec.message() == std::string(fanout::to_string(kind)));
        BOOST_TEST(std::string(ec.category().name()) == "fanout.upstream");
    }
    BOOST_TEST(fanout::to_string(fanout::kind_at(fanout::error_kind_count - 1)) == "cancelled");
    auto const failure = fanout::make_failure(fanout::error_kind::connect, "refused");
    BOOST_TEST((failure.error->code() == fanout::error_kind::connect));
    BOOST_TEST((failure.error->code() != fanout::error_kind::timeout));
}

BOOST_AUTO_TEST_CASE(embeds_results_and_errors) {
    auto services = three_services();
    std::vector<fanout::fetch_result> results(3);
    results[0].body = R"({"u":1})";
    results[1] = fanout::make_failure(fanout::error_kind::status, "upstream answered 500 \"x\"", 500);
    results[2] = fanout::make_failure(fanout::error_kind::timeout, "late");
    auto r = fanout::render("wg", services, results, fanout::partial_status(results), fanout::clock::now());
    BOOST_TEST(r.status == 200u);
    BOOST_TEST(!r.complete);
    auto v = json::parse(r.body).as_object();
    BOOST_TEST(v.at("pattern").as_string() == "wg");
    BOOST_TEST(v.at("results").as_object().size() == 1u);
    BOOST_TEST(v.at("results").at("users").at("u").as_int64() == 1);
    BOOST_TEST(v.at("errors").at("orders").at("kind").as_string() == "status");
    BOOST_TEST(v.at("errors").at("orders").at("status").as_int64() == 500);
    BOOST_TEST(v.at("errors").at("orders").at("message").as_string() == "upstream answered 500 \"x\"");
    BOOST_TEST(v.at("errors").at("inventory").at("kind").as_string() == "timeout");
    BOOST_TEST(!v.at("errors").at("inventory").as_object().contains("status"));
    BOOST_TEST(v.at("complete").as_bool() == false);
    BOOST_TEST(v.at("elapsed_ms").is_double());
}

BOOST_AUTO_TEST_CASE(status_follows_the_failures) {
    std::vector<fanout::fetch_result> all_timeouts{
        make_failure(error_kind::timeout, ""), make_failure(error_kind::timeout, "")};
    BOOST_TEST(fanout::partial_status(all_timeouts) == 504u);
    std::vector<fanout::fetch_result> mixed{
        make_failure(error_kind::timeout, ""), make_failure(error_kind::connect, "")};
    BOOST_TEST(fanout::partial_status(mixed) == 502u);
    std::vector<fanout::fetch_result> one_ok{make_failure(error_kind::timeout, ""), {"{}", std::nullopt}};
    BOOST_TEST(fanout::partial_status(one_ok) == 200u);
}

BOOST_AUTO_TEST_CASE(no_errors_is_an_empty_object) {
    auto services = three_services();
    std::vector<fanout::fetch_result> results(3, fanout::fetch_result{"[1]", std::nullopt});
    auto r = fanout::render("channel", services, results, 200, fanout::clock::now());
    BOOST_TEST(r.complete);
    auto v = json::parse(r.body).as_object();
    BOOST_TEST(v.at("errors").as_object().empty());
    BOOST_TEST(v.at("complete").as_bool());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(test_options)

fanout::command_line parse(std::vector<char const*> args) {
    args.insert(args.begin(), "fanout");
    return fanout::parse_command_line(static_cast<int>(args.size()), args.data());
}

std::string error_of(std::vector<char const*> args) {
    try {
        parse(std::move(args));
    } catch (std::exception const& e) {
        return e.what();
    }
    return "";
}

BOOST_AUTO_TEST_CASE(defaults) {
    auto cl = parse({});
    BOOST_TEST(cl.opts.listen_host == "127.0.0.1");
    BOOST_TEST(cl.opts.listen_port == 8080);
    BOOST_TEST(cl.opts.threads >= 1u);
    BOOST_TEST(cl.opts.upstreams.empty());
    BOOST_TEST(cl.opts.timeout.count() == 1000);
    BOOST_TEST(cl.opts.max_timeout.count() == 10000);
    BOOST_TEST(cl.opts.max_upstream_body == 1048576u);
}

BOOST_AUTO_TEST_CASE(all_flags) {
    auto cl = parse(
        {"--listen", "[::1]:0", "--threads", "3", "--upstream", "a=http://127.0.0.1:1/a", "--upstream",
         "b=http://127.0.0.1:2/b", "--timeout-ms", "200", "--max-timeout-ms", "900", "--max-upstream-body",
         "4096"}
    );
    BOOST_TEST(cl.opts.listen_host == "::1");
    BOOST_TEST(cl.opts.listen_port == 0);
    BOOST_TEST(cl.opts.threads == 3u);
    BOOST_TEST_REQUIRE(cl.opts.upstreams.size() == 2u);
    BOOST_TEST(cl.opts.upstreams[1].name == "b");
    BOOST_TEST(cl.opts.timeout.count() == 200);
    BOOST_TEST(cl.opts.max_timeout.count() == 900);
    BOOST_TEST(cl.opts.max_upstream_body == 4096u);
    BOOST_TEST((parse({"--help"}).what == fanout::command_line::action::help));
    BOOST_TEST((parse({"--version"}).what == fanout::command_line::action::version));
}

BOOST_AUTO_TEST_CASE(errors_name_the_flag) {
    BOOST_TEST(error_of({"--bogus"}).find("--bogus") != std::string::npos);
    BOOST_TEST(error_of({"--threads", "x"}).find("--threads") != std::string::npos);
    BOOST_TEST(error_of({"--threads", "-1"}).find("--threads") != std::string::npos);
    BOOST_TEST(error_of({"--listen", "nope"}).find("--listen") != std::string::npos);
    BOOST_TEST(error_of({"--listen", "1.2.3.4:70000"}).find("--listen") != std::string::npos);
    BOOST_TEST(error_of({"--upstream", "x"}).find("--upstream") != std::string::npos);
    BOOST_TEST(
        error_of({"--upstream", "a=http://h/", "--upstream", "a=http://g/"}).find("twice") !=
        std::string::npos
    );
    BOOST_TEST(error_of({"--timeout-ms", "0"}).find("--timeout-ms") != std::string::npos);
    BOOST_TEST(
        error_of({"--timeout-ms", "5000", "--max-timeout-ms", "100"}).find("--timeout-ms") !=
        std::string::npos
    );
    BOOST_TEST(error_of({"--max-upstream-body", "0"}).find("--max-upstream-body") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(listen_takes_an_ip_address_or_localhost) {
    BOOST_TEST(parse({"--listen", "localhost:0"}).opts.listen_host == "localhost");
    BOOST_TEST(parse({"--listen", "0.0.0.0:80"}).opts.listen_host == "0.0.0.0");
    BOOST_TEST(parse({"--listen", "[::]:80"}).opts.listen_host == "::");
    BOOST_TEST(
        error_of({"--listen", "example.invalid:0"}) ==
        "--listen: 'example.invalid' is not an IP address or localhost (host names are not resolved)"
    );
    for (auto bad : {"::1:80", "[127.0.0.1]:80", "[localhost]:80", "1.2.3:80", ":80", "[]:80"})
        BOOST_TEST(error_of({"--listen", bad}).rfind("--listen: ", 0) == 0, bad);
}

// A value is repeated in its error cut to its first 64 bytes: a huge one must not flood stderr.
BOOST_AUTO_TEST_CASE(errors_repeat_a_long_value_cut_short) {
    std::string const huge(1'000'000, 'x');
    auto const listen = "9.9.9.9:" + huge;
    auto const url = "a=ftp://h/" + huge;
    auto const option = "--" + huge;
    auto const option_value = "--threads=" + huge;
    for (auto args : std::vector<std::vector<char const*>>{
             {"--threads", huge.c_str()},
             {option_value.c_str()},
             {option.c_str()},
             {"--log-level", huge.c_str()},
             {"--deadline-header", huge.c_str()},
             {"--listen", huge.c_str()},
             {"--listen", listen.c_str()},
             {"--upstream", huge.c_str()},
             {"--upstream", url.c_str()},
             {"--config", huge.c_str()}}) {
        auto const error = error_of(args);
        BOOST_TEST(error.size() < 300u, error.substr(0, 300));
        BOOST_TEST(error.find("xxx...'") != std::string::npos, error.substr(0, 300));
    }
}

BOOST_AUTO_TEST_CASE(timeout_over_its_cap_names_both_flags) {
    BOOST_TEST(
        error_of({"--timeout-ms", "5000", "--max-timeout-ms", "100"}) ==
        "--timeout-ms: 5000 must not exceed --max-timeout-ms (100)"
    );
    BOOST_TEST(
        error_of({"--timeout-ms", "20000"}) ==
        "--timeout-ms: 20000 must not exceed --max-timeout-ms (10000, the default)"
    );
    BOOST_TEST(
        error_of({"--max-timeout-ms", "500"}) ==
        "--max-timeout-ms: 500 must not be below --timeout-ms (1000, the default)"
    );
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(test_config)

std::string config_error(std::string_view text) {
    fanout::options o;
    try {
        fanout::apply_config(o, text);
    } catch (std::invalid_argument const& e) {
        return e.what();
    }
    return "";
}

BOOST_AUTO_TEST_CASE(applies_every_setting) {
    fanout::options o;
    fanout::apply_config(o, R"({
        "listen": "127.0.0.1:9000", "threads": 3, "timeout_ms": 250, "max_timeout_ms": 2000,
        "max_upstream_body": 4096, "upstream_pool_size": 8, "max_request_head": 4096, "max_request_body": 100,
        "header_timeout_ms": 3000, "idle_timeout_ms": 4000, "max_connections": 50, "shutdown_grace_ms": 700,
        "log_level": "debug",
        "upstreams": [{"name": "users", "url": "http://127.0.0.1:9101/users", "timeout_ms": 150},
                      {"name": "orders", "url": "http://127.0.0.1:9102/orders"}]
    })");
    BOOST_TEST(o.listen_port == 9000);
    BOOST_TEST(o.threads == 3u);
    BOOST_TEST(o.timeout.count() == 250);
    BOOST_TEST(o.max_timeout.count() == 2000);
    BOOST_TEST(o.max_upstream_body == 4096u);
    BOOST_TEST(o.upstream_pool_size == 8u);
    BOOST_TEST(o.max_request_head == 4096u);
    BOOST_TEST(o.max_request_body == 100u);
    BOOST_TEST(o.header_timeout.count() == 3000);
    BOOST_TEST(o.idle_timeout.count() == 4000);
    BOOST_TEST(o.max_connections == 50u);
    BOOST_TEST(o.shutdown_grace.count() == 700);
    BOOST_TEST(o.log_level == "debug");
    BOOST_TEST_REQUIRE(o.upstreams.size() == 2u);
    BOOST_TEST(o.upstreams[0].timeout.value().count() == 150);
    BOOST_TEST(!o.upstreams[1].timeout.has_value());
}

BOOST_AUTO_TEST_CASE(hedging_and_retries_per_upstream) {
    fanout::options o;
    fanout::apply_config(o, R"({"upstreams": [
        {"name": "a", "url": "http://h/", "hedge_after_ms": 3, "hedge_quantile": 0.95, "hedge_budget": 0.05,
         "max_retries": 2, "retry_backoff_ms": 20, "retry_budget": 0.1, "retry_min_per_s": 0},
        {"name": "b", "url": "http://h/"}]})");
    BOOST_TEST_REQUIRE(o.upstreams.size() == 2u);
    auto const& a = o.upstreams[0];
    BOOST_TEST(a.hedge_after.value().count() == 3);
    BOOST_TEST(a.hedge_quantile.value() == 0.95);
    BOOST_TEST(a.hedge_budget == 0.05);
    BOOST_TEST(a.max_retries == 2u);
    BOOST_TEST(a.retry_backoff.count() == 20);
    BOOST_TEST(a.retry_budget == 0.1);
    BOOST_TEST(a.retry_min_per_s == 0u);
    auto const& b = o.upstreams[1];  // off by default
    BOOST_TEST(!b.hedge_after.has_value());
    BOOST_TEST(!b.hedge_quantile.has_value());
    BOOST_TEST(b.max_retries == 0u);
    auto error_of = [](std::string_view key_value) {
        return config_error(
            R"({"upstreams": [{"name": "a", "url": "http://h/", )" + std::string(key_value) + "}]}"
        );
    };
    BOOST_TEST(error_of(R"("hedge_quantile": 1)").find("upstreams[0].hedge_quantile") != std::string::npos);
    BOOST_TEST(error_of(R"("hedge_quantile": 0)").find("above 0") != std::string::npos);
    BOOST_TEST(error_of(R"("hedge_budget": 1.5)").find("upstreams[0].hedge_budget") != std::string::npos);
    BOOST_TEST(error_of(R"("retry_budget": "x")").find("expected a number") != std::string::npos);
    BOOST_TEST(error_of(R"("max_retries": 11)").find("upstreams[0].max_retries") != std::string::npos);
}

// The level the logs write for warnings is a level the configuration takes.
BOOST_AUTO_TEST_CASE(log_level_warning_is_warn) {
    fanout::options o;
    fanout::apply_config(o, R"({"log_level": "warning"})");
    BOOST_TEST(o.log_level == "warn");
    BOOST_TEST(config_error(R"({"log_level": "warnings"})").find("log_level") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(errors_name_the_key) {
    BOOST_TEST(config_error(R"({"timeout": 5})").find("timeout") != std::string::npos);
    BOOST_TEST(config_error(R"({"timeout": 5})").find("unknown key") != std::string::npos);
    BOOST_TEST(config_error(R"({"threads": "2"})").find("threads") != std::string::npos);
    BOOST_TEST(config_error(R"({"threads": 2.5})").find("threads") != std::string::npos);
    BOOST_TEST(config_error(R"({"log_level": "loud"})").find("log_level") != std::string::npos);
    BOOST_TEST(config_error(R"({"upstreams": {}})").find("upstreams") != std::string::npos);
    BOOST_TEST(
        config_error(R"({"upstreams": [{"name": "a", "url": "http://h/", "retries": 1}]})")
            .find("upstreams[0].retries") != std::string::npos
    );
    BOOST_TEST(
        config_error(R"({"upstreams": [{"name": "a"}]})").find("upstreams[0].url") != std::string::npos
    );
    BOOST_TEST(
        config_error(R"({"upstreams": [{"name": "a", "url": "http://h/", "timeout_ms": "1"}]})")
            .find("upstreams[0].timeout_ms") != std::string::npos
    );
    BOOST_TEST(config_error("[1]").find("object") != std::string::npos);
    BOOST_TEST(config_error("{").find("JSON") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_duplicate_key_is_an_error_naming_it) {
    BOOST_TEST(config_error(R"({"threads": 2, "threads": 3})") == "duplicate key 'threads'");
    BOOST_TEST(
        config_error(R"({"upstreams": [{"name": "a", "url": "http://h/"},
                                       {"name": "b", "url": "http://h/", "url": "http://g/"}]})") ==
        "upstreams[1]: duplicate key 'url'"
    );
    BOOST_TEST(
        config_error(R"({"upstreams": [{"name": "a", "url": "http://h/"}], "upstreams": []})") ==
        "duplicate key 'upstreams'"
    );
    // The same key in different objects is no duplicate.
    BOOST_TEST(config_error(R"({"upstreams": [{"name": "a", "url": "http://h/"},
                                              {"name": "b", "url": "http://h/"}]})")
                   .empty());
}

BOOST_AUTO_TEST_CASE(a_long_key_or_value_is_repeated_cut_short) {
    std::string const huge(100'000, 'x');
    for (auto const& text :
         {R"({")" + huge + R"(": 1})", R"({"log_level": ")" + huge + R"("})",
          R"({"upstreams": [{"name": "a", "url": "http://h/", ")" + huge + R"(": 1}]})",
          R"({"upstreams": [{"name": "a", "url": "ftp://h/)" + huge + R"("}]})",
          R"({"upstreams": [{"name": "!)" + huge + R"(", "url": "http://h/"}]})"}) {
        auto const error = config_error(text);
        BOOST_TEST(error.size() < 300u, error.substr(0, 300));
        BOOST_TEST(error.find("xxx...") != std::string::npos, error.substr(0, 300));
    }
}

BOOST_AUTO_TEST_CASE(errors_name_the_listen_key) {
    BOOST_TEST(
        config_error(R"({"listen": "example.invalid:0"})") ==
        "listen: 'example.invalid' is not an IP address or localhost (host names are not resolved)"
    );
}

std::string read_file(std::string const& path) {
    std::ifstream in{path};
    BOOST_TEST_REQUIRE(in.good(), "cannot read " << path);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

BOOST_AUTO_TEST_CASE(the_documented_example_is_valid) {
    auto const example = fanout::test_paths::source("examples/fanout.json");
    auto cl = test_options::parse({"--config", example.c_str()});
    BOOST_TEST(cl.opts.upstreams.size() == 3u);
    BOOST_TEST(cl.opts.upstreams[1].timeout.value().count() == 300);
}

BOOST_AUTO_TEST_CASE(the_example_shows_every_setting_and_is_the_documented_one) {
    auto example = read_file(fanout::test_paths::source("examples/fanout.json"));
    std::set<std::string> shown;
    auto const doc = json::parse(example);
    for (auto const& [key, value] : doc.as_object()) shown.insert(std::string(key));
    // The settings are the flags of --help, in snake_case, but for those only the command line has.
    std::set<std::string> settings{"upstreams"};
    auto help = test_options::parse({"--help"}).help;
    for (auto at = help.find("  --"); at != std::string::npos; at = help.find("  --", at + 1)) {
        auto flag = help.substr(at + 4, help.find_first_of(" \n", at + 4) - at - 4);
        if (flag == "config" || flag == "upstream" || flag == "help" || flag == "version" || flag == "check")
            continue;
        std::replace(flag.begin(), flag.end(), '-', '_');
        settings.insert(flag);
    }
    auto join = [](std::set<std::string> const& names) {
        std::string all;
        for (auto const& n : names) all += n + " ";
        return all;
    };
    BOOST_TEST(join(shown) == join(settings));
    auto page = read_file(fanout::test_paths::source("docs/operations.md"));
    BOOST_TEST(page.find("```json\n" + example + "```\n") != std::string::npos);
}

// Every key of an upstream that `fanout --check` prints (an https:// one has them all) is a row of
// the table of upstream keys in docs/operations.md.
BOOST_AUTO_TEST_CASE(the_documented_upstream_keys_are_every_key) {
    fanout::options opts;
    opts.upstreams.push_back(fanout::parse_service("billing=https://127.0.0.1:8443/v1"));
    auto const printed = json::parse(fanout::describe(opts)).at("upstreams").at(0).as_object();
    auto const doc = read_file(fanout::test_paths::source("docs/operations.md"));
    auto const from = doc.find("### Upstream keys");
    BOOST_TEST_REQUIRE(from != std::string::npos);
    auto const table = doc.substr(from, doc.find("\n\n", doc.find("| key |", from)) - from);
    BOOST_TEST(printed.size() >= 18u);
    for (auto const& [key, value] : printed) {
        auto const cell = "`" + std::string(key) + "`";
        bool const listed = table.find("\n| " + cell) != std::string::npos ||
                            table.find(", " + cell + " |") != std::string::npos;
        BOOST_TEST(listed, key << " is not in the table of upstream keys of docs/operations.md");
    }
}

BOOST_AUTO_TEST_CASE(timeout_over_its_cap_names_the_keys_as_written) {
    auto with_config = [](std::string const& text, std::vector<char const*> flags = {}) {
        char path[] = "/tmp/fanout-config-XXXXXX";
        int fd = mkstemp(path);
        BOOST_TEST_REQUIRE(fd >= 0);
        BOOST_TEST_REQUIRE(write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
        close(fd);
        flags.insert(flags.begin(), {"--config", path});
        auto error = test_options::error_of(flags);
        unlink(path);
        auto prefix = "--config " + std::string(path) + ": ";
        return error.rfind(prefix, 0) == 0 ? error.substr(prefix.size()) : error;
    };
    BOOST_TEST(
        with_config(R"({"timeout_ms": 20000})") ==
        "timeout_ms: 20000 must not exceed max_timeout_ms (10000, the default)"
    );
    BOOST_TEST(
        with_config(R"({"max_timeout_ms": 500})") ==
        "max_timeout_ms: 500 must not be below timeout_ms (1000, the default)"
    );
    BOOST_TEST(
        with_config(R"({"timeout_ms": 900, "max_timeout_ms": 500})") ==
        "timeout_ms: 900 must not exceed max_timeout_ms (500)"
    );
    BOOST_TEST(
        with_config(R"({"timeout_ms": 900})", {"--max-timeout-ms", "500"}) ==
        "timeout_ms: 900 must not exceed --max-timeout-ms (500)"
    );
    auto flag_at_fault = with_config(R"({"max_timeout_ms": 500})", {"--timeout-ms", "900"});
    BOOST_TEST(
        flag_at_fault.rfind("--timeout-ms: 900 must not exceed max_timeout_ms (500, from --config ", 0) == 0
    );
}

BOOST_AUTO_TEST_CASE(flags_win_over_the_file) {
    char path[] = "/tmp/fanout-config-XXXXXX";
    int fd = mkstemp(path);
    BOOST_TEST_REQUIRE(fd >= 0);
    std::string text = R"({"timeout_ms": 300, "threads": 4,
                          "upstreams": [{"name": "a", "url": "http://127.0.0.1:1/a", "timeout_ms": 50}]})";
    BOOST_TEST_REQUIRE(write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    close(fd);
    auto cl = test_options::parse({"--config", path, "--timeout-ms", "700"});
    BOOST_TEST(cl.opts.timeout.count() == 700);  // the flag
    BOOST_TEST(cl.opts.threads == 4u);           // the file
    BOOST_TEST_REQUIRE(cl.opts.upstreams.size() == 1u);
    BOOST_TEST(cl.opts.upstreams[0].timeout.value().count() == 50);
    auto replaced = test_options::parse({"--config", path, "--upstream", "b=http://127.0.0.1:2/b"});
    BOOST_TEST_REQUIRE(replaced.opts.upstreams.size() == 1u);
    BOOST_TEST(replaced.opts.upstreams[0].name == "b");
    BOOST_TEST(
        test_options::error_of({"--config", "/nonexistent/fanout.json"}).find("--config") != std::string::npos
    );
    unlink(path);
}

// A configuration file is a real configuration: without services it is refused, never the demo.
BOOST_AUTO_TEST_CASE(a_config_file_without_upstreams_is_refused) {
    char path[] = "/tmp/fanout-config-XXXXXX";
    int fd = mkstemp(path);
    BOOST_TEST_REQUIRE(fd >= 0);
    std::string const text = R"({"threads": 2, "upstreams": []})";
    BOOST_TEST_REQUIRE(write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    close(fd);
    auto const error = test_options::error_of({"--config", path});
    BOOST_TEST(error.rfind("--config " + std::string(path) + ": no upstreams", 0) == 0u, error);
    // Services given as flags complete it; no flag and no file at all is the demo.
    BOOST_TEST(
        test_options::parse({"--config", path, "--upstream", "b=http://127.0.0.1:2/b"})
            .opts.upstreams.size() == 1u
    );
    BOOST_TEST(test_options::parse({}).opts.upstreams.empty());
    unlink(path);
}

// A syntax error says where it is.
BOOST_AUTO_TEST_CASE(a_json_syntax_error_names_its_line_and_column) {
    auto const error = config_error("{\n  \"threads\": 2,\n  \"timeout_ms\" 5\n}");
    BOOST_TEST(error.find("not valid JSON at line 3, column 16") == 0u, error);
}

// The file is read no further than the limit: /dev/zero never ends.
BOOST_AUTO_TEST_CASE(a_config_file_over_1_mib_is_refused) {
    BOOST_TEST(
        test_options::error_of({"--config", "/dev/zero"}) == "--config /dev/zero: larger than 1048576 bytes"
    );
    char path[] = "/tmp/fanout-config-XXXXXX";
    int fd = mkstemp(path);
    BOOST_TEST_REQUIRE(fd >= 0);
    // Exactly the limit is read; one byte more is refused.
    std::string text = R"({"threads": 2, "upstreams": [{"name": "a", "url": "http://127.0.0.1:1/a"}]})";
    text.append((1 << 20) - text.size(), ' ');
    BOOST_TEST_REQUIRE(write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    BOOST_TEST(test_options::parse({"--config", path}).opts.threads == 2u);
    BOOST_TEST_REQUIRE(write(fd, " ", 1) == 1);
    close(fd);
    BOOST_TEST(
        test_options::error_of({"--config", path}) ==
        "--config " + std::string(path) + ": larger than 1048576 bytes"
    );
    unlink(path);
}

BOOST_AUTO_TEST_SUITE_END()
