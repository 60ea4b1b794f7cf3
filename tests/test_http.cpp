#include "tests/support.hpp"

#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>

using namespace fanout;
using namespace fanout::test;
namespace json = boost::json;

namespace {

std::vector<fanout::sim_service> users_and_orders() {
    return {sim("users"), sim("orders")};
}

std::string error_message(response const& res) {
    return std::string(json::parse(res.body()).at("error").as_string());
}

}  // namespace

BOOST_AUTO_TEST_SUITE(test_http)

BOOST_AUTO_TEST_CASE(unknown_path_is_404_json) {
    harness h{users_and_orders()};
    blocking_client c{h.port()};
    c.send_get("/api/aggregate/nope");
    auto res = c.read();
    BOOST_TEST_REQUIRE(res.has_value());
    BOOST_TEST(res->result_int() == 404u);
    BOOST_TEST((*res)[boost::beast::http::field::content_type] == "application/json");
    BOOST_TEST(!error_message(*res).empty());
    BOOST_TEST(res->keep_alive());
}

BOOST_AUTO_TEST_CASE(other_method_is_405_with_allow) {
    harness h{users_and_orders()};
    for (std::string method : {"POST", "DELETE", "PUT"}) {
        blocking_client c{h.port()};
        c.send(method + " /api/aggregate/wg HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
        auto res = c.read();
        BOOST_TEST_REQUIRE(res.has_value());
        BOOST_TEST(res->result_int() == 405u, method);
        BOOST_TEST((*res)[boost::beast::http::field::allow] == "GET, HEAD");
        c.send_get("/healthz");
        auto next = c.read(2s);
        BOOST_TEST_REQUIRE(next.has_value());
        BOOST_TEST(next->result_int() == 200u, method);
    }
    BOOST_TEST(h.counters("users").requests == 0u);
}

// HEAD answers as GET would, without the body; the connection stays in step.
BOOST_AUTO_TEST_CASE(head_is_answered_like_get_without_a_body) {
    harness h{users_and_orders()};
    blocking_client c{h.port()};
    for (std::string path : {"/healthz", "/metrics", "/api/aggregate/wg", "/nope"}) {
        c.send("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n");
        auto get = c.read();
        c.send("HEAD " + path + " HTTP/1.1\r\nHost: x\r\n\r\n");
        auto head = c.read(10s, true);
        BOOST_TEST_REQUIRE(get.has_value());
        BOOST_TEST_REQUIRE(head.has_value());
        BOOST_TEST(head->result_int() == get->result_int(), path);
        BOOST_TEST(
            (*head)[boost::beast::http::field::content_type] ==
            (*get)[boost::beast::http::field::content_type]
        );
        BOOST_TEST(head->body().empty());
    }
    c.send_get("/healthz");
    auto next = c.read(2s);
    BOOST_TEST_REQUIRE(next.has_value());
    BOOST_TEST(next->result_int() == 200u);
}

BOOST_AUTO_TEST_CASE(every_answer_carries_a_date) {
    harness h{users_and_orders()};
    for (std::string raw :
         {"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n",
          "BAD\r\n\r\n"}) {
        blocking_client c{h.port()};
        c.send(raw);
        auto res = c.read();
        BOOST_TEST_REQUIRE(res.has_value());
        auto date = std::string((*res)[boost::beast::http::field::date]);
        // IMF-fixdate, e.g. "Fri, 27 Nov 2026 15:47:27 GMT"
        BOOST_TEST(date.size() == 29u, date);
        BOOST_TEST(date.ends_with(" GMT"), date);
        BOOST_TEST(date[3] == ',');
    }
}

BOOST_AUTO_TEST_CASE(http2_and_later_request_lines_get_505) {
    harness h{users_and_orders()};
    blocking_client c{h.port()};
    c.send("GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n");
    auto res = c.read();
    BOOST_TEST_REQUIRE(res.has_value());
    BOOST_TEST(res->result_int() == 505u);
    BOOST_TEST(c.closed_by_server());
}

BOOST_AUTO_TEST_CASE(empty_lines_before_a_request_are_ignored) {
    harness h{users_and_orders()};
    blocking_client c{h.port()};
    c.send("\r\n\r\n\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    auto res = c.read();
    BOOST_TEST_REQUIRE(res.has_value());
    BOOST_TEST(res->result_int() == 200u);
}

BOOST_AUTO_TEST_CASE(http11_needs_exactly_one_valid_host) {
    harness h{users_and_orders()};
    for (std::string head :
         {"GET /healthz HTTP/1.1\r\n\r\n", "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
          "GET /healthz HTTP/1.1\r\nHost: a b\r\n\r\n", "GET /healthz HTTP/1.1\r\nHost: u@a\r\n\r\n",
          "GET /healthz HTTP/1.0\r\nHost: a b\r\n\r\n"}) {
        blocking_client c{h.port()};
        c.send(head);
        auto res = c.read();
        BOOST_TEST_REQUIRE(res.has_value());
        BOOST_TEST(res->result_int() == 400u, head);
        BOOST_TEST(c.closed_by_server());
    }
    for (std::string head :
         {"GET /healthz HTTP/1.0\r\n\r\n", "GET /healthz HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n"}) {
        blocking_client c{h.port()};
        c.send(head);
        auto res = c.read();
        BOOST_TEST_REQUIRE(res.has_value());
        BOOST_TEST(res->result_int() == 200u, head);
    }
}

// RFC 9112 §6.3: a Transfer-Encoding whose final coding is not chunked cannot frame the body; the
// Content-Length beside it must not be used, or the "body" would be read as a second request.
BOOST_AUTO_TEST_CASE(a_transfer_coding_other_than_chunked_gets_one_501_then_close) {
    harness h{users_and_orders()};
    blocking_client c{h.port()};
    c.send(
        "POST /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nContent-Length: 0\r\n\r\n"
        "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
    );
    auto res = c.read();
    BOOST_TEST_REQUIRE(res.has_value());
    BOOST_TEST(res->result_int() == 501u);
    BOOST_TEST(c.closed_by_server());  // and nothing else was answered
}

BOOST_AUTO_TEST_CASE(malformed_request_is_400_and_closed) {
    harness h{users_and_orders()};
    for (std::string bad :
         {"NOT HTTP AT ALL\r\n\r\n", "GET /api/aggregate/wg HTTP/1.9\r\n\r\n",
          "GET /api/aggregate/wg HTTP/1.1\r\nContent-Length: x\r\n\r\n"}) {
        blocking_client c{h.port()};
        c.send(bad);
        auto res = c.read();
        BOOST_TEST_REQUIRE(res.has_value());
        BOOST_TEST(res->result_int() == 400u);
        BOOST_TEST(!res->keep_alive());
        BOOST_TEST(c.closed_by_server());
    }
}

// RFC 9112 §3.2.2: absolute-form is accepted and routed by its path; its host is not used.
BOOST_AUTO_TEST_CASE(absolute_form_is_routed_by_its_path) {
    harness h{users_and_orders()};
    blocking_client c{h.port()};
    c.send("GET http://evil.example/api/aggregate/wg?timeout_ms=50 HTTP/1.1\r\nHost: evil.example\r\n\r\n");
    auto res = c.read();
    BOOST_TEST_REQUIRE(res.has_value());
    BOOST_TEST(res->result_int() == 200u);
    BOOST_TEST(h.counters("users").requests == 1u);  // the configured upstreams, not evil.example
    for (std::string bad : {"ftp://evil.example/api/aggregate/wg", "*", "evil.example:80"}) {
        blocking_client d{h.port()};
        d.send("GET " + bad + " HTTP/1.1\r\nHost: x\r\n\r\n");
        auto r = d.read();
        BOOST_TEST_REQUIRE(r.has_value());
        BOOST_TEST(r->result_int() == 400u, bad);
    }
}

BOOST_AUTO_TEST_CASE(head_over_8k_is_431_and_closed) {
    harness h{users_and_orders()};
    blocking_client c{h.port()};
    c.send("GET /api/aggregate/wg HTTP/1.1\r\nHost: x\r\nX-Padding: " + std::string(9000, 'a') + "\r\n\r\n");
    auto res = c.read();
    BOOST_TEST_REQUIRE(res.has_value());
    BOOST_TEST(res->result_int() == 431u);
    BOOST_TEST(c.closed_by_server());
}

BOOST_AUTO_TEST_CASE(head_just_under_8k_is_served) {
    harness h{users_and_orders()};
    blocking_client c{h.port()};
    c.send("GET /api/aggregate/wg HTTP/1.1\r\nHost: x\r\nX-Padding: " + std::string(7000, 'a') + "\r\n\r\n");
    auto res = c.read();
    BOOST_TEST_REQUIRE(res.has_value());
    BOOST_TEST(res->result_int() == 200u);
}

BOOST_AUTO_TEST_CASE(request_body_is_bounded) {
    harness h{users_and_orders()};
    blocking_client c{h.port()};
    c.send("GET /api/aggregate/wg HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n");
    auto res = c.read();
    BOOST_TEST_REQUIRE(res.has_value());
    BOOST_TEST(res->result_int() == 413u);
    BOOST_TEST(c.closed_by_server());
}

BOOST_AUTO_TEST_CASE(bad_timeout_ms_is_400) {
    harness h{users_and_orders()};
    for (auto bad : {"abc", "0", "-5", "", "1.5", "10ms", "1%2E5"}) {  // the value is percent-decoded
        for (auto path : {"/api/aggregate/channel-with-context-timeout", "/api/aggregate/errgroup"}) {
            blocking_client c{h.port()};
            c.send_get(std::string(path) + "?timeout_ms=" + bad);
            auto res = c.read();
            BOOST_TEST_REQUIRE(res.has_value());
            BOOST_TEST(res->result_int() == 400u, path << "?timeout_ms=" << bad);
            BOOST_TEST(error_message(*res).find("timeout_ms") != std::string::npos);
        }
    }
    BOOST_TEST(h.counters("users").requests == 0u);
}

BOOST_AUTO_TEST_CASE(keep_alive_serves_many_requests_on_one_connection) {
    harness h{users_and_orders()};
    blocking_client c{h.port()};
    for (auto path : {"/api/aggregate/wg", "/api/aggregate/channel", "/api/aggregate/errgroup"}) {
        c.send_get(path);
        auto res = c.read();
        BOOST_TEST_REQUIRE(res.has_value());
        BOOST_TEST(res->result_int() == 200u);
        BOOST_TEST(res->keep_alive());
    }
}

BOOST_AUTO_TEST_CASE(pipelined_requests_are_answered_in_order) {
    harness h{{sim("users", fanout::sim_behaviour::ok, 100ms), sim("orders")}};
    blocking_client c{h.port()};
    std::string batch;
    for (auto path : {"/api/aggregate/wg", "/nope", "/api/aggregate/channel", "/api/aggregate/errgroup"})
        batch += "GET " + std::string(path) + " HTTP/1.1\r\nHost: x\r\n\r\n";
    c.send(batch);
    std::vector<std::string> seen;
    for (int i = 0; i < 4; ++i) {
        auto res = c.read();
        BOOST_TEST_REQUIRE(res.has_value());
        auto body = json::parse(res->body()).as_object();
        seen.push_back(
            body.contains("pattern") ? std::string(body.at("pattern").as_string())
                                     : std::to_string(res->result_int())
        );
    }
    std::vector<std::string> expected{"wg", "404", "channel", "errgroup"};
    BOOST_TEST(seen == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(connection_close_is_honoured) {
    harness h{users_and_orders()};
    blocking_client c{h.port()};
    c.send_get("/api/aggregate/wg", false);
    auto res = c.read();
    BOOST_TEST_REQUIRE(res.has_value());
    BOOST_TEST(res->result_int() == 200u);
    BOOST_TEST(!res->keep_alive());
    BOOST_TEST(c.closed_by_server());
}

BOOST_AUTO_TEST_CASE(http_1_0_closes_by_default) {
    harness h{users_and_orders()};
    blocking_client c{h.port()};
    c.send("GET /api/aggregate/wg HTTP/1.0\r\n\r\n");
    auto res = c.read();
    BOOST_TEST_REQUIRE(res.has_value());
    BOOST_TEST(res->result_int() == 200u);
    BOOST_TEST(res->version() == 10u);
    BOOST_TEST(c.closed_by_server());
}

BOOST_AUTO_TEST_SUITE_END()
