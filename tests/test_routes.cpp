// Routes from configuration: path templates, request mapping, header forwarding, shapes,
// fallbacks, and their errors; over real sockets against echo upstreams.

#include "handlers/shape.hpp"
#include "server/route_table.hpp"
#include "tests/paths.hpp"
#include "tests/support.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <fanout/aggregator.hpp>
#include <fanout/options.hpp>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <stdexcept>

using namespace fanout;
using namespace fanout::test;

namespace {

// The lines of an application/x-ndjson body, each parsed (defined with the streaming tests).
std::vector<boost::json::value> ndjson(std::string const& body);

// Options whose routes are read from JSON, as the config file's "routes" is.
fanout::options routed(std::string const& routes) {
    fanout::options o;
    fanout::apply_config(o, R"({"routes":)" + routes + "}");
    return o;
}

// An echo upstream under each of the names.
std::vector<fanout::service> echoes(echo_upstream const& echo, std::vector<std::string> const& names) {
    std::vector<fanout::service> out;
    for (auto const& n : names) out.push_back(fanout::make_service(n, echo.url("/")));
    return out;
}

std::string target_of(aggregate_answer const& a, std::string_view key) {
    return std::string(a.body.at("results").at(key).at("target").as_string());
}

// The error check_route raises for a configuration of routes over upstreams a and b, "" if none.
std::string route_error(std::string const& routes, std::string const& extra_settings = "") {
    try {
        fanout::options o;
        fanout::apply_config(
            o,
            R"({"upstreams":[{"name":"a","url":"http://127.0.0.1:1/a"},{"name":"b","url":"http://127.0.0.1:1/b"}],)" +
                extra_settings + R"("routes":)" + routes + "}"
        );
        fanout::route_table table{o};
    } catch (std::invalid_argument const& e) {
        return e.what();
    }
    return "";
}

}  // namespace

BOOST_AUTO_TEST_SUITE(test_routes)

BOOST_AUTO_TEST_CASE(path_segments_and_query_fill_each_backends_own_path) {
    echo_upstream echo;
    auto opts = routed(R"([{"path":"/api/users/{id}/overview","pattern":"context-timeout","backends":[
        {"service":"users","path":"/users/{id}?lang={lang}","key":"profile"},
        {"service":"orders","path":"/orders?user={id}&lang={lang}"},
        {"service":"users","key":"plain"}]}])");
    harness h{{}, opts, echoes(echo, {"users", "orders"})};
    auto a = get(h.port(), "/api/users/42/overview?lang=en");
    BOOST_TEST(a.status == 200u);
    BOOST_TEST(a.body.at("pattern").as_string() == "context-timeout");
    BOOST_TEST(a.body.at("route").as_string() == "/api/users/{id}/overview");
    BOOST_TEST(target_of(a, "profile") == "/users/42?lang=en");
    BOOST_TEST(target_of(a, "orders") == "/orders?user=42&lang=en");
    BOOST_TEST(target_of(a, "plain") == "/");  // the upstream's own URL
    BOOST_TEST(a.complete_header == "true");

    // A segment's value stays one segment, a query value one value, whatever it holds.
    a = get(h.port(), "/api/users/a%2Fb%20c/overview?lang=x%26y%3Dz");
    BOOST_TEST(a.status == 200u);
    BOOST_TEST(target_of(a, "profile") == "/users/a%2Fb%20c?lang=x%26y%3Dz");
    a = get(h.port(), "/api/users/%2E%2E%2F%2E%2E%2Fadmin/overview?lang=en");
    BOOST_TEST(target_of(a, "profile") == "/users/..%2F..%2Fadmin?lang=en");
}

BOOST_AUTO_TEST_CASE(a_missing_or_escaping_value_is_a_400_and_no_backend_is_called) {
    echo_upstream echo;
    auto opts = routed(R"([{"path":"/api/users/{id}","backends":[
        {"service":"users","path":"/users/{id}?lang={lang}"}]}])");
    harness h{{}, opts, echoes(echo, {"users"})};
    auto a = get(h.port(), "/api/users/42");
    BOOST_TEST(a.status == 400u);
    BOOST_TEST(std::string(a.body.at("error").as_string()).find("'lang'") != std::string::npos);
    for (auto dots : {"..", "%2E%2E", ".", "%2e"}) {
        a = get(h.port(), "/api/users/" + std::string(dots) + "?lang=en");
        BOOST_TEST(a.status == 400u, dots);
        BOOST_TEST(
            std::string(a.body.at("error").as_string()).find("path segment 'id'") != std::string::npos
        );
    }
    a = get(h.port(), "/api/users?lang=en");
    BOOST_TEST(a.status == 404u);  // one segment short: no route
    a = get(h.port(), "/api/users/1/2?lang=en");
    BOOST_TEST(a.status == 404u);
    BOOST_TEST(echo.counters().requests.load() == 0u);
}

BOOST_AUTO_TEST_CASE(only_the_listed_headers_are_forwarded) {
    echo_upstream echo;
    auto opts = routed(R"([{"path":"/me","forward_headers":["Authorization","accept-language"],"backends":[
        {"service":"users"}]},{"path":"/plain","backends":[{"service":"users"}]}])");
    harness h{{}, opts, echoes(echo, {"users"})};
    std::vector<header> sent{
        {"Authorization", "Bearer t0k3n"}, {"Accept-Language", "de"}, {"Cookie", "sid=1"}, {"X-Other", "1"}};
    auto a = get(h.port(), "/me", 10s, sent);
    BOOST_TEST(a.status == 200u);
    BOOST_TEST(echoed_header(a, "authorization", "users") == "Bearer t0k3n");
    BOOST_TEST(echoed_header(a, "accept-language", "users") == "de");
    BOOST_TEST(echoed_header(a, "cookie", "users") == "");
    BOOST_TEST(echoed_header(a, "x-other", "users") == "");
    // A route that lists none forwards none, on the same server.
    a = get(h.port(), "/plain", 10s, sent);
    BOOST_TEST(echoed_header(a, "authorization", "users") == "");
    // A header the client does not send is not made up.
    a = get(h.port(), "/me");
    BOOST_TEST(echoed_header(a, "authorization", "users") == "");
}

BOOST_AUTO_TEST_CASE(allow_and_deny_keep_or_drop_members) {
    echo_upstream echo;
    auto opts = routed(R"([{"path":"/shaped","forward_headers":["Authorization"],"backends":[
        {"service":"users","key":"kept","allow":["target","headers.authorization","missing","headers.none.deeper"]},
        {"service":"users","key":"dropped","deny":["headers","missing.too"]},
        {"service":"users","path":"/array","key":"list","allow":["x"]}]}])");
    harness h{{}, opts, echoes(echo, {"users"})};
    auto a = get(h.port(), "/shaped", 10s, {{"Authorization", "secret"}});
    BOOST_TEST_REQUIRE(a.status == 200u);
    auto const& kept = a.body.at("results").at("kept").as_object();
    BOOST_TEST(kept.size() == 2u);
    BOOST_TEST(kept.at("target").as_string() == "/");
    BOOST_TEST(kept.at("headers").as_object().size() == 1u);  // host, user-agent... dropped
    BOOST_TEST(kept.at("headers").at("authorization").as_string() == "secret");
    auto const& dropped = a.body.at("results").at("dropped").as_object();
    BOOST_TEST(dropped.size() == 1u);
    BOOST_TEST(dropped.contains("target"));
    // Not an object: placed whole.
    BOOST_TEST(boost::json::serialize(a.body.at("results").at("list")) == "[1,2,3]");
}

BOOST_AUTO_TEST_CASE(merge_is_in_backend_order_whatever_order_the_answers_come_in) {
    echo_upstream echo;
    // The first backend answers last; its members still give way to the later backends'.
    auto opts = routed(R"([{"path":"/merged","shape":"merge","backends":[
        {"service":"users","path":"/sleep/150","key":"slow"},
        {"service":"users","path":"/fast?x=1","key":"fast"},
        {"service":"users","path":"/array","key":"list"}]}])");
    harness h{{}, opts, echoes(echo, {"users"})};
    auto a = get(h.port(), "/merged");
    BOOST_TEST_REQUIRE(a.status == 200u);
    BOOST_TEST(a.complete_header == "true");
    auto const& body = a.body.as_object();
    BOOST_TEST(body.at("target").as_string() == "/fast?x=1");
    BOOST_TEST(boost::json::serialize(body.at("list")) == "[1,2,3]");  // not an object: under its key
    BOOST_TEST(!body.contains("_errors"));
    BOOST_TEST(!body.contains("pattern"));
    BOOST_TEST(body.size() == 3u);  // target, headers, list
}

BOOST_AUTO_TEST_CASE(merge_lists_failures_in_errors_only_when_there_are_any) {
    echo_upstream echo;
    auto opts = routed(R"([{"path":"/merged","shape":"merge","backends":[
        {"service":"users","path":"/ok","key":"one"},
        {"service":"users","path":"/status/500","key":"two"}]}])");
    harness h{{}, opts, echoes(echo, {"users"})};
    auto a = get(h.port(), "/merged");
    BOOST_TEST(a.status == 200u);
    BOOST_TEST(a.complete_header == "false");
    BOOST_TEST(a.body.at("target").as_string() == "/ok");
    BOOST_TEST(a.body.at("_errors").at("two").at("kind").as_string() == "status");
    BOOST_TEST(a.body.at("_errors").at("two").at("status").as_int64() == 500);
}

// A failed backend with a fallback: its part is the fallback, the failure is still listed, and
// the status is what it would be had it answered; on every pattern.
BOOST_AUTO_TEST_CASE(a_fallback_stands_in_on_every_pattern) {
    echo_upstream echo;
    for (auto pattern : {"wg", "channel", "context-timeout", "errgroup"}) {
        auto opts = routed(std::string(R"([{"path":"/r","pattern":")") + pattern + R"(","backends":[
            {"service":"users","path":"/status/503","key":"recs","fallback":{"items":[],"stale":true}},
            {"service":"users","path":"/sleep/50","key":"slow"}]}])");
        harness h{{}, opts, echoes(echo, {"users"})};
        auto a = get(h.port(), "/r");
        BOOST_TEST(a.status == 200u, pattern);
        BOOST_TEST(a.complete_header == "false", pattern);
        BOOST_TEST(
            boost::json::serialize(a.body.at("results").at("recs")) == R"({"items":[],"stale":true})", pattern
        );
        BOOST_TEST(a.body.at("errors").at("recs").at("status").as_int64() == 503, pattern);
        // errgroup: the failure with a fallback cancelled nothing.
        BOOST_TEST(kind_of(a, "slow") == "ok", pattern);

        // Every backend failed, one with a fallback: still answered.
        opts = routed(std::string(R"([{"path":"/r","pattern":")") + pattern + R"(","backends":[
            {"service":"users","path":"/status/500","key":"a","fallback":null},
            {"service":"users","path":"/status/500","key":"b"}]}])");
        harness h2{{}, opts, echoes(echo, {"users"})};
        a = get(h2.port(), "/r");
        if (std::string_view(pattern) == "errgroup")
            BOOST_TEST(a.status == 502u, pattern);  // b, without one, fails the group
        else
            BOOST_TEST(a.status == 200u, pattern);
        BOOST_TEST(a.body.at("results").at("a").is_null(), pattern);
    }
}

BOOST_AUTO_TEST_CASE(an_errgroup_route_answers_with_the_upstreams_4xx) {
    echo_upstream echo;
    auto opts = routed(R"([{"path":"/users/{id}","pattern":"errgroup","backends":[
        {"service":"users","path":"/status/404/{id}","key":"profile"},
        {"service":"users","path":"/sleep/2000","key":"orders"}]}])");
    harness h{{}, opts, echoes(echo, {"users"})};
    auto a = get(h.port(), "/users/7");
    BOOST_TEST(a.status == 404u);
    BOOST_TEST(a.body.at("errors").at("profile").at("status").as_int64() == 404);
    BOOST_TEST(kind_of(a, "orders") == "cancelled");  // the first failure cancelled the slow one
    BOOST_TEST(a.took < 1500ms);
    // The seed's errgroup endpoint keeps its contract: 502.
    harness seed{{}, {}, {fanout::make_service("users", echo.url("/status/404"))}};
    BOOST_TEST(get(seed.port(), "/api/aggregate/errgroup").status == 502u);
}

BOOST_AUTO_TEST_CASE(a_backend_not_required_cancels_nothing_on_errgroup) {
    echo_upstream echo;
    auto opts = routed(R"([{"path":"/r","pattern":"errgroup","backends":[
        {"service":"users","path":"/status/500","key":"optional","required":false},
        {"service":"users","path":"/sleep/100","key":"main"}]}])");
    harness h{{}, opts, echoes(echo, {"users"})};
    auto a = get(h.port(), "/r");
    BOOST_TEST(a.status == 200u);
    BOOST_TEST(kind_of(a, "main") == "ok");
    BOOST_TEST(kind_of(a, "optional") == "status");
    BOOST_TEST(a.complete_header == "false");
}

BOOST_AUTO_TEST_CASE(configured_routes_replace_the_seed_endpoints_but_not_healthz_or_metrics) {
    echo_upstream echo;
    auto opts = routed(R"([{"path":"/api/aggregate/wg","pattern":"errgroup","timeout_ms":700,"backends":[
        {"service":"users"}]},{"path":"/api/v1/{thing}","pattern":"wg","backends":[{"service":"users"}]}])");
    harness h{{}, opts, echoes(echo, {"users"})};
    auto a = get(h.port(), "/api/aggregate/wg");
    BOOST_TEST(a.status == 200u);
    BOOST_TEST(a.body.at("pattern").as_string() == "errgroup");  // the configured route's pattern
    BOOST_TEST(get(h.port(), "/api/aggregate/channel").status == 404u);
    BOOST_TEST(get(h.port(), "/healthz").status == 200u);
    BOOST_TEST(get(h.port(), "/api/v1/x").status == 200u);
    // The template, never the concrete path.
    std::vector<std::pair<std::string, double>> const counts{
        {R"(fanout_requests_total{endpoint="wg",route="/api/v1/{thing}",code="200"})", 1},
        {R"(fanout_requests_total{endpoint="errgroup",route="/api/aggregate/wg",code="200"})", 1},
        {R"(fanout_requests_total{endpoint="other",route="",code="404"})", 1}};
    auto const page = scrape_when(h.port(), counts);
    for (auto const& [series, value] : counts) BOOST_TEST(metric(page, series) == value, series);
}

BOOST_AUTO_TEST_CASE(a_route_deadline_applies_and_the_query_shortens_it) {
    echo_upstream echo;
    auto opts =
        routed(R"([{"path":"/r","timeout_ms":300,"backends":[{"service":"users","path":"/sleep/3000"}]}])");
    harness h{{}, opts, echoes(echo, {"users"})};
    auto a = get(h.port(), "/r");
    BOOST_TEST(a.status == 504u);
    BOOST_TEST(
        std::string(a.body.at("errors").at("users").at("message").as_string()).find("300 ms") !=
        std::string::npos
    );
    a = get(h.port(), "/r?timeout_ms=50");
    BOOST_TEST(
        std::string(a.body.at("errors").at("users").at("message").as_string()).find("50 ms") !=
        std::string::npos
    );
}

BOOST_AUTO_TEST_CASE(configuration_mistakes_name_their_key) {
    auto has = [](std::string const& error, std::string const& text) {
        BOOST_TEST(error.find(text) != std::string::npos, "'" << error << "' lacks '" << text << "'");
    };
    has(route_error(R"([{"path":"/x","backends":[{"service":"userz"}]}])"),
        "routes[0].backends[0].service: unknown upstream 'userz'");
    has(route_error(
            R"([{"path":"/ok","backends":[{"service":"a"}]},{"path":"/{x}","backends":[{"service":"a"}]}])"
        ),
        "routes[1].path: '/{x}' would shadow /healthz");
    has(route_error(R"([{"path":"/metrics","backends":[{"service":"a"}]}])"), "would shadow /metrics");
    has(route_error(
            R"([{"path":"/u/{id}/o","backends":[{"service":"a"}]},{"path":"/u/me/{x}","backends":[{"service":"a"}]}])"
        ),
        "routes[1].path: '/u/me/{x}' and routes[0].path '/u/{id}/o' can match the same path");
    has(route_error(R"([{"path":"/x","backends":[{"service":"a"},{"service":"a"}]}])"),
        "routes[0].backends[1].key: 'a' is also the key of backends[0]");
    has(route_error(R"([{"path":"/x","pattern":"fast","backends":[{"service":"a"}]}])"),
        "routes[0].pattern: expected");
    has(route_error(R"([{"path":"/x","shape":"flat","backends":[{"service":"a"}]}])"),
        "routes[0].shape: expected");
    has(route_error(R"([{"path":"/x","pattern":"wg","stream":"ndjson","backends":[{"service":"a"}]}])"),
        "routes[0].stream: not with pattern wg");
    has(route_error(R"([{"path":"/x","backends":[{"service":"a","allow":["x"],"deny":["y"]}]}])"),
        "routes[0].backends[0]: allow and deny");
    for (auto header :
         {"Host", "content-length", "Transfer-Encoding", "Connection", "traceparent", "X-Request-Timeout-Ms"})
        has(route_error(
                std::string(R"([{"path":"/x","forward_headers":[")") + header +
                R"("],"backends":[{"service":"a"}]}])"
            ),
            "routes[0].forward_headers[0]: '" + std::string(header) + "' cannot be forwarded");
    has(route_error(R"([{"path":"/x","backends":[]}])"), "routes[0].backends: expected at least one");
    has(route_error(R"([{"path":"/x/../y","backends":[{"service":"a"}]}])"), "routes[0].path: segment '..'");
    has(route_error(R"([{"path":"/x/{a}/{a}","backends":[{"service":"a"}]}])"), "given twice");
    has(route_error(R"([{"path":"/x","backends":[{"service":"a","path":"no-slash"}]}])"),
        "routes[0].backends[0].path");
    has(route_error(R"([{"path":"/x","timeout_ms":20000,"backends":[{"service":"a"}]}])"),
        "routes[0].timeout_ms: 20000 must not exceed max_timeout_ms (10000)");
    has(route_error(R"([{"path":"/x","backends":[{"service":"a","colour":"red"}]}])"),
        "routes[0].backends[0].colour: unknown key");
    has(route_error(
            R"([{"path":"/x","backends":[{"service":"a"}]},{"path":"/x","backends":[{"service":"a"}]}])"
        ),
        "can match the same path");
    BOOST_TEST(
        route_error(R"([{"path":"/u/{id}","backends":[{"service":"a","path":"/a/{id}?q={q}"},
        {"service":"a","key":"a2","allow":["x.y"],"fallback":[1]}]},{"path":"/u/{id}/o","backends":[{"service":"b"}]}])"
        ) == ""
    );
}

BOOST_AUTO_TEST_CASE(server_timing_is_off_unless_asked_and_names_each_backend) {
    echo_upstream echo;
    auto opts = routed(R"([{"path":"/timed","server_timing":true,"backends":[
        {"service":"users","path":"/sleep/30","key":"slow"},{"service":"users","path":"/status/500","key":"bad"}]},
        {"path":"/quiet","backends":[{"service":"users"}]}])");
    harness h{{}, opts, echoes(echo, {"users"})};
    auto timed = fetch(h.port(), "/timed");
    BOOST_TEST_REQUIRE(timed.has_value());
    std::string const header((*timed)["Server-Timing"]);
    BOOST_TEST(header.find("slow;dur=") == 0u, header);
    BOOST_TEST(header.find(R"(;desc="ok", bad;dur=)") != std::string::npos, header);
    BOOST_TEST(header.find(R"(desc="status", total;dur=)") != std::string::npos, header);
    auto const slow_ms = std::stod(header.substr(9));
    BOOST_TEST(slow_ms >= 30.0, header);
    auto quiet = fetch(h.port(), "/quiet");
    BOOST_TEST_REQUIRE(quiet.has_value());
    BOOST_TEST((*quiet)["Server-Timing"].empty());
    // Globally, for the seed's endpoints too.
    fanout::options global;
    global.server_timing = true;
    harness seed{{}, global, echoes(echo, {"users"})};
    auto wg = fetch(seed.port(), "/api/aggregate/wg");
    BOOST_TEST_REQUIRE(wg.has_value());
    BOOST_TEST(std::string((*wg)["Server-Timing"]).find("users;dur=") == 0u);
}

// An application mounting fanout's routes in its own server: the same routes through aggregator,
// forwarded headers taken from the request it hands over.
BOOST_AUTO_TEST_CASE(routes_mounted_in_an_applications_own_server) {
    echo_upstream echo;
    boost::asio::io_context ioc{1};
    auto opts = routed(R"([{"path":"/u/{id}","forward_headers":["Authorization"],"backends":[
        {"service":"users","path":"/users/{id}","key":"profile"}]},
        {"path":"/feed","pattern":"channel","stream":"ndjson","backends":[{"service":"users","path":"/a"}]}])"
    );
    opts.upstreams = echoes(echo, {"users"});
    fanout::aggregator agg{ioc.get_executor(), opts};
    auto handle = [&](std::string target) {
        boost::beast::http::request<boost::beast::http::empty_body> req{
            boost::beast::http::verb::get, target, 11};
        req.set(boost::beast::http::field::authorization, "Bearer m");
        auto f = agg.async_handle(req, boost::asio::use_future);
        ioc.restart();
        ioc.run_for(10s);
        return f.get();
    };
    auto res = handle("/u/5");
    BOOST_TEST(res.result_int() == 200u);
    auto body = boost::json::parse(res.body());
    BOOST_TEST(body.at("route").as_string() == "/u/{id}");
    BOOST_TEST(body.at("results").at("profile").at("target").as_string() == "/users/5");
    BOOST_TEST(body.at("results").at("profile").at("headers").at("authorization").as_string() == "Bearer m");
    res = handle("/feed");
    BOOST_TEST(res[boost::beast::http::field::content_type] == "application/x-ndjson");
    BOOST_TEST(ndjson(res.body()).size() == 2u);
}

// Logs name the route by its template, as the metrics do.
BOOST_AUTO_TEST_CASE(the_access_log_names_the_route) {
    echo_upstream echo;
    captured_events events;
    auto opts = routed(R"([{"path":"/u/{id}","backends":[{"service":"users"}]}])");
    events.attach(opts, "info");
    opts.access_log = true;
    {
        harness h{{}, opts, echoes(echo, {"users"})};
        BOOST_TEST(get(h.port(), "/u/9").status == 200u);
    }
    auto access = events.with(R"("event":"access")");
    BOOST_TEST_REQUIRE(access.size() == 1u);
    BOOST_TEST(access.front().find(R"("route":"/u/{id}")") != std::string::npos, access.front());
}

// A route configured in code (no config file) is checked the same way when the server is made.
BOOST_AUTO_TEST_CASE(routes_declared_in_code_are_checked_when_the_server_is_made) {
    fanout::options o;
    fanout::route_config r{.path = "/x", .backends = {{.service = "nobody"}}};
    o.routes.push_back(r);
    boost::asio::io_context ioc;
    o.upstreams.push_back(fanout::make_service("a", "http://127.0.0.1:1/"));
    o.listen_port = 0;
    BOOST_CHECK_THROW(fanout::http_server(ioc.get_executor(), o), std::invalid_argument);
    o.routes[0].backends[0].service = "a";
    o.routes[0].backends[0].fallback = "{not json";
    BOOST_CHECK_THROW(fanout::http_server(ioc.get_executor(), o), std::invalid_argument);
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

// What arrived on a connection, and when (from the request's sending), read until the server
// closed it, `done` said so, or `limit` passed.
struct arrival {
    std::chrono::milliseconds at;
    std::string bytes;
};

std::vector<arrival> read_arrivals(
    boost::asio::ip::tcp::socket& sock,
    std::chrono::milliseconds limit,
    std::function<bool(std::string const& all)> const& done
) {
    auto const start = std::chrono::steady_clock::now();
    std::vector<arrival> out;
    std::string all;
    auto& ioc = static_cast<boost::asio::io_context&>(sock.get_executor().context());
    for (;;) {
        char data[4096];
        boost::system::error_code ec;
        std::size_t n = 0;
        bool finished = false;
        sock.async_read_some(boost::asio::buffer(data), [&](boost::system::error_code e, std::size_t got) {
            ec = e;
            n = got;
            finished = true;
        });
        ioc.restart();
        ioc.run_for(
            limit -
            std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start)
        );
        if (!finished) {
            sock.cancel();
            ioc.restart();
            ioc.run();
            return out;
        }
        if (ec) return out;
        out.push_back(
            {std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start),
             std::string(data, n)}
        );
        all += out.back().bytes;
        if (done(all)) return out;
    }
}

std::string joined(std::vector<arrival> const& arrivals) {
    std::string all;
    for (auto const& a : arrivals) all += a.bytes;
    return all;
}

// The body of a chunked answer, its chunks joined; the head in `head`.
std::string dechunked(std::string const& all, std::string& head) {
    auto const end = all.find("\r\n\r\n");
    BOOST_TEST_REQUIRE(end != std::string::npos);
    head = all.substr(0, end + 2);
    std::string body;
    for (std::size_t at = end + 4; at < all.size();) {
        auto const line_end = all.find("\r\n", at);
        BOOST_TEST_REQUIRE(line_end != std::string::npos);
        auto const size = std::stoul(all.substr(at, line_end - at), nullptr, 16);
        if (size == 0) break;
        body += all.substr(line_end + 2, size);
        at = line_end + 2 + size + 2;
    }
    return body;
}

std::vector<boost::json::value> ndjson(std::string const& body) {
    std::vector<boost::json::value> lines;
    std::size_t from = 0;
    for (auto nl = body.find('\n'); nl != std::string::npos; from = nl + 1, nl = body.find('\n', from))
        lines.push_back(boost::json::parse(body.substr(from, nl - from)));
    BOOST_TEST(from == body.size());  // every line ends with a newline
    return lines;
}

bool chunked_end(std::string const& all) {
    return all.find("\r\n0\r\n\r\n") != std::string::npos;
}

boost::asio::ip::tcp::socket connect_to(boost::asio::io_context& ioc, std::uint16_t port) {
    boost::asio::ip::tcp::socket sock{ioc};
    sock.connect({boost::asio::ip::make_address("127.0.0.1"), port});
    return sock;
}

void send(boost::asio::ip::tcp::socket& sock, std::string const& raw) {
    boost::asio::write(sock, boost::asio::buffer(raw));
}

// The lines of a streamed answer to GET target on a new connection.
std::vector<boost::json::value> streamed_lines(std::uint16_t port, std::string const& target) {
    boost::asio::io_context ioc;
    auto sock = connect_to(ioc, port);
    send(sock, "GET " + target + " HTTP/1.1\r\nHost: x\r\n\r\n");
    std::string head;
    return ndjson(dechunked(joined(read_arrivals(sock, 10s, chunked_end)), head));
}

}  // namespace

BOOST_AUTO_TEST_SUITE(test_streaming)

// The fast backend's line reaches the client long before the slow one has answered.
BOOST_AUTO_TEST_CASE(each_part_is_sent_the_moment_its_backend_completes) {
    echo_upstream echo;
    for (auto pattern : {"channel", "context-timeout", "errgroup"}) {
        auto opts =
            routed(std::string(R"([{"path":"/s/{id}","pattern":")") + pattern + R"(","stream":"ndjson",
            "timeout_ms":5000,"backends":[
            {"service":"users","path":"/sleep/1500/{id}","key":"slow"},
            {"service":"users","path":"/fast/{id}","key":"fast","allow":["target"]}]}])");
        harness h{{}, opts, echoes(echo, {"users"})};
        boost::asio::io_context ioc;
        auto sock = connect_to(ioc, h.port());
        send(sock, "GET /s/7 HTTP/1.1\r\nHost: x\r\n\r\n");
        auto arrivals = read_arrivals(sock, 10s, chunked_end);
        std::string head;
        auto lines = ndjson(dechunked(joined(arrivals), head));
        BOOST_TEST(head.find("HTTP/1.1 200 OK") == 0u, pattern);
        BOOST_TEST(head.find("Content-Type: application/x-ndjson") != std::string::npos, pattern);
        BOOST_TEST(head.find("Transfer-Encoding: chunked") != std::string::npos, pattern);
        BOOST_TEST_REQUIRE(lines.size() == 3u, pattern);
        BOOST_TEST(lines[0].at("key").as_string() == "fast", pattern);
        BOOST_TEST(boost::json::serialize(lines[0].at("result")) == R"({"target":"/fast/7"})", pattern);
        BOOST_TEST(lines[1].at("key").as_string() == "slow", pattern);
        BOOST_TEST(lines[2].at("complete").as_bool(), pattern);
        BOOST_TEST(lines[2].at("status").as_int64() == 200, pattern);
        // When the fast line arrived, the slow backend was still sleeping: wide bounds, for TSan.
        std::optional<std::chrono::milliseconds> fast_at, end_at;
        std::string so_far;
        for (auto const& a : arrivals) {
            so_far += a.bytes;
            if (!fast_at && so_far.find(R"("key":"fast")") != std::string::npos) fast_at = a.at;
            if (!end_at && chunked_end(so_far)) end_at = a.at;
        }
        BOOST_TEST_REQUIRE(fast_at.has_value());
        BOOST_TEST(fast_at->count() < 1000, pattern << ": " << fast_at->count() << " ms");
        BOOST_TEST(end_at->count() >= 1400, pattern);
        // The connection stays open for the next request.
        send(sock, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        auto again = joined(read_arrivals(sock, 10s, [](auto const& all) {
            return all.find("\"ok\"") != std::string::npos;
        }));
        BOOST_TEST(again.find("200 OK") != std::string::npos, pattern);
    }
}

BOOST_AUTO_TEST_CASE(failures_fallbacks_and_deadlines_have_their_lines) {
    echo_upstream echo;
    auto opts = routed(R"([{"path":"/s","stream":"ndjson","timeout_ms":300,"backends":[
        {"service":"users","path":"/status/500","key":"failing"},
        {"service":"users","path":"/status/503","key":"covered","fallback":{"stale":true}},
        {"service":"users","path":"/sleep/3000","key":"late"}]}])");
    harness h{{}, opts, echoes(echo, {"users"})};
    auto lines = streamed_lines(h.port(), "/s");
    BOOST_TEST_REQUIRE(lines.size() == 4u);
    std::map<std::string, boost::json::value> by_key;
    for (std::size_t i = 0; i + 1 < lines.size(); ++i)
        by_key[std::string(lines[i].at("key").as_string())] = lines[i];
    BOOST_TEST(by_key.at("failing").at("error").at("status").as_int64() == 500);
    BOOST_TEST(!by_key.at("failing").as_object().contains("result"));
    BOOST_TEST(by_key.at("covered").at("result").at("stale").as_bool());
    BOOST_TEST(by_key.at("covered").at("error").at("status").as_int64() == 503);
    BOOST_TEST(by_key.at("late").at("error").at("kind").as_string() == "timeout");
    BOOST_TEST(lines[2].at("key").as_string() == "late");  // reported at the deadline, after the others
    BOOST_TEST(!lines[3].at("complete").as_bool());
    BOOST_TEST(lines[3].at("status").as_int64() == 200);  // one part answered (its fallback)
}

BOOST_AUTO_TEST_CASE(an_errgroup_stream_ends_with_the_status_the_answer_would_have_had) {
    echo_upstream echo;
    auto opts = routed(R"([{"path":"/s","pattern":"errgroup","stream":"ndjson","backends":[
        {"service":"users","path":"/status/404","key":"profile"},
        {"service":"users","path":"/sleep/3000","key":"orders"}]}])");
    harness h{{}, opts, echoes(echo, {"users"})};
    auto lines = streamed_lines(h.port(), "/s");
    BOOST_TEST_REQUIRE(lines.size() == 3u);
    BOOST_TEST(lines[0].at("key").as_string() == "profile");
    BOOST_TEST(lines[1].at("error").at("kind").as_string() == "cancelled");
    BOOST_TEST(lines[2].at("status").as_int64() == 404);
}

// A client that leaves after the first line: the hung backend's fetch is cancelled (its
// connection closed) at once, not at the deadline.
BOOST_AUTO_TEST_CASE(a_client_leaving_mid_stream_cancels_the_rest) {
    echo_upstream echo;
    echo.counters().hang_next = 1;
    auto opts = routed(R"([{"path":"/s","stream":"ndjson","timeout_ms":10000,"backends":[
        {"service":"users"},{"service":"echo","key":"hung"}]}])");
    harness h{{sim("users")}, opts, echoes(echo, {"echo"})};
    boost::asio::io_context ioc;
    auto sock = connect_to(ioc, h.port());
    send(sock, "GET /s HTTP/1.1\r\nHost: x\r\n\r\n");
    auto first = joined(read_arrivals(sock, 10s, [](auto const& all) {
        return all.find(R"("key":"users")") != std::string::npos;
    }));
    BOOST_TEST_REQUIRE(first.find(R"("key":"users")") != std::string::npos);
    sock.close();
    BOOST_TEST(eventually([&] { return echo.counters().abandoned.load() == 1u; }, 5s));
    BOOST_TEST(eventually([&] {
        auto m = fetch(h.port(), "/metrics");
        return m && metric(m->body(), R"(fanout_client_disconnects_total{endpoint="context-timeout"})") == 1;
    }));
}

BOOST_AUTO_TEST_CASE(head_gets_the_head_only_and_http_1_0_a_body_ended_by_close) {
    echo_upstream echo;
    auto opts = routed(R"([{"path":"/s","stream":"ndjson","backends":[{"service":"users","path":"/a"}]}])");
    harness h{{}, opts, echoes(echo, {"users"})};
    boost::asio::io_context ioc;
    auto sock = connect_to(ioc, h.port());
    send(sock, "HEAD /s HTTP/1.1\r\nHost: x\r\n\r\n");
    auto head = joined(read_arrivals(sock, 10s, [](auto const& all) {
        return all.find("\r\n\r\n") != std::string::npos;
    }));
    BOOST_TEST(head.find("Transfer-Encoding: chunked") != std::string::npos);
    BOOST_TEST(head.substr(head.find("\r\n\r\n") + 4).empty());
    BOOST_TEST(echo.counters().requests.load() == 0u);  // nothing fetched for a head
    // The connection is still usable.
    send(sock, "GET /s HTTP/1.1\r\nHost: x\r\n\r\n");
    std::string h2;
    auto lines = ndjson(dechunked(joined(read_arrivals(sock, 10s, chunked_end)), h2));
    BOOST_TEST(lines.size() == 2u);

    auto old = connect_to(ioc, h.port());
    send(old, "GET /s HTTP/1.0\r\n\r\n");
    auto all = joined(read_arrivals(old, 10s, [](auto const&) { return false; }));  // until closed
    BOOST_TEST(all.find("Transfer-Encoding") == std::string::npos);
    BOOST_TEST(all.find("Content-Length") == std::string::npos);
    lines = ndjson(all.substr(all.find("\r\n\r\n") + 4));
    BOOST_TEST(lines.size() == 2u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(test_routes_example)

// examples/routes.json over simulated services of the same names: what the README and
// docs/routes.md show of it.
BOOST_AUTO_TEST_CASE(the_example_configuration_answers_as_the_docs_show) {
    std::ifstream file{fanout::test_paths::source("examples/routes.json")};
    std::string const text{std::istreambuf_iterator<char>(file), {}};
    fanout::options opts;
    fanout::apply_config(opts, text);
    opts.listen_port = 0;
    harness h{{sim("users"), sim("orders"), sim("recommendations")}, opts};

    auto a = get(h.port(), "/api/users/1/overview?status=shipped", 10s, {{"Authorization", "Bearer demo"}});
    BOOST_TEST(a.status == 200u);
    BOOST_TEST(a.body.at("route").as_string() == "/api/users/{id}/overview");
    auto const& profile = a.body.at("results").at("profile").as_object();
    BOOST_TEST(profile.size() == 2u);                                                // allow: users, total
    BOOST_TEST(!a.body.at("results").at("orders").as_object().contains("service"));  // deny
    BOOST_TEST(a.body.at("results").at("recommendations").as_object().contains("items"));
    // Shaping keeps an upstream's numbers as they read.
    auto raw = fetch(h.port(), "/api/users/1/overview?status=shipped");
    BOOST_TEST_REQUIRE(raw.has_value());
    BOOST_TEST(raw->body().find("\"total\":129.5") != std::string::npos);
    BOOST_TEST(raw->body().find("E2") == std::string::npos);

    BOOST_TEST(get(h.port(), "/api/users/1/overview").status == 400u);  // ?status= is needed

    a = get(h.port(), "/api/users/1/summary");
    BOOST_TEST(a.status == 200u);
    BOOST_TEST(a.body.as_object().contains("users"));
    BOOST_TEST(a.body.as_object().contains("orders"));
    BOOST_TEST(a.body.as_object().contains("items"));  // recs, merged whole

    auto feed = fetch(h.port(), "/api/users/1/feed");
    BOOST_TEST_REQUIRE(feed.has_value());
    BOOST_TEST((*feed)[boost::beast::http::field::content_type] == "application/x-ndjson");
    auto lines = ndjson(feed->body());
    BOOST_TEST_REQUIRE(lines.size() == 3u);
    BOOST_TEST(lines[2].at("complete").as_bool());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(test_shape)

namespace {

fanout::backend_plan backend(
    std::string key, std::vector<fanout::member_path> allow = {}, std::vector<fanout::member_path> deny = {}
) {
    fanout::backend_plan b;
    b.key = std::move(key);
    b.allow = std::move(allow);
    b.deny = std::move(deny);
    return b;
}

fanout::fetch_result answered(std::string body) {
    fanout::fetch_result r;
    r.body = std::move(body);
    return r;
}

std::string shaped(fanout::backend_plan const& b, std::string body) {
    std::string out;
    fanout::append_part(out, b, answered(std::move(body)));
    return out;
}

}  // namespace

// Members are found in the text as it came: strings holding braces, quotes, commas and escapes,
// keys with escapes, whitespace and nesting must not confuse the scan; kept values stay as written.
BOOST_AUTO_TEST_CASE(allow_and_deny_work_on_the_text_as_it_came) {
    std::string const body = R"( { "a" : "x}\"{,y" , "b\u0063" : [ {"a":1}, "]" ] ,
        "n": 1.50E2, "o": {"p": {"q": 1, "r": [2]}, "s": "t"}, "e": {} } )";
    BOOST_TEST(
        shaped(backend("k", {{"a"}, {"bc"}}), body) == R"({"a":"x}\"{,y","b\u0063":[ {"a":1}, "]" ]})"
    );
    BOOST_TEST(
        shaped(backend("k", {{"n"}, {"o", "p", "r"}, {"o", "s"}}), body) ==
        R"({"n":1.50E2,"o":{"p":{"r":[2]},"s":"t"}})"
    );
    BOOST_TEST(
        shaped(backend("k", {}, {{"a"}, {"bc"}, {"o", "p"}, {"e", "x"}}), body) ==
        R"({"n":1.50E2,"o":{"s":"t"},"e":{}})"
    );
    BOOST_TEST(shaped(backend("k", {{"missing"}}), body) == "{}");
    BOOST_TEST(shaped(backend("k", {{"a"}}), " [1, {\"a\": 2}] ") == " [1, {\"a\": 2}] ");  // not an object
    BOOST_TEST(shaped(backend("k", {{"a"}}), "{}") == "{}");
}

BOOST_AUTO_TEST_CASE(merge_replaces_in_place_and_places_the_rest_under_their_key) {
    fanout::route_plan route;
    route.shape = fanout::shape::merge;
    route.backends = {backend("one"), backend("two", {{"b"}, {"c"}}), backend("three")};
    std::vector<fanout::fetch_result> results{
        answered(R"({"a": 1, "b": {"x": 1}, "_errors": 0})"), answered(R"({"c": 3, "b": "second", "d": 4})"),
        answered(R"("text")")};
    BOOST_TEST(fanout::merged(route, results) == R"({"a":1,"b":"second","_errors":0,"c":3,"three":"text"})");
    results[2] = fanout::make_failure(fanout::error_kind::timeout, "late");
    BOOST_TEST(
        fanout::merged(route, results) ==
        R"({"a":1,"b":"second","c":3,"_errors":{"three":{"kind":"timeout","message":"late"}}})"
    );
}

BOOST_AUTO_TEST_SUITE_END()
