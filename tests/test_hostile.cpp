#include "server/request_parser.hpp"
#include "tests/support.hpp"
#include "upstream/response_parser.hpp"
#include "wire/read_message.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>
#include <boost/url/parse.hpp>

#include <fanout/client.hpp>

using namespace fanout;
using namespace fanout::test;
namespace net = boost::asio;
namespace http = boost::beast::http;
namespace json = boost::json;
using tcp = net::ip::tcp;

namespace {

// Feeds `pieces` of one message to a fresh parser, as a socket may deliver them.
template <class Parser>
boost::beast::error_code parse_pieces(std::vector<std::string_view> const& pieces, std::size_t max_head) {
    Parser parser;
    parser.header_limit(static_cast<std::uint32_t>(max_head));
    boost::beast::flat_buffer buffer;
    boost::beast::error_code ec;
    for (auto piece : pieces) {
        auto n = net::buffer_copy(buffer.prepare(piece.size()), net::buffer(piece));
        buffer.commit(n);
        ec = wire::parse_buffered(parser, buffer, max_head);
        if (ec != http::error::need_more) break;
    }
    if (!ec && !parser.is_done()) ec = http::error::partial_message;
    return ec;
}

// Feeds `message` to a fresh parser in pieces of `size` bytes.
template <class Parser>
boost::beast::error_code parse_by(std::string_view message, std::size_t size, std::size_t max_head) {
    std::vector<std::string_view> pieces;
    for (std::size_t at = 0; at < message.size(); at += size) pieces.push_back(message.substr(at, size));
    return parse_pieces<Parser>(pieces, max_head);
}

// Parts of a chunked message, so that one of them can be made a given size.
struct chunked_message {
    std::string head;      // from the start line to the empty line, both included
    std::string first;     // the first chunk-size line, its CRLF included
    std::string second;    // the second one, after the first chunk's data and its CRLF
    std::string trailers;  // from the last chunk's "0" to the end
    std::string text() const { return head + first + "x\r\n" + second + "yz\r\n" + trailers; }
};

chunked_message chunked(bool request) {
    return {
        request ? "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nX-Pad: a\r\n\r\n"
                : "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Pad: a\r\n\r\n",
        "1;e=a\r\n", "2;e=a\r\n", "0\r\nX-T: a\r\n\r\n"};
}

// Pads `part` (which ends in "\r\n", or "\r\n\r\n" if `twice`) to `size` bytes before its end.
void pad_to(std::string& part, std::size_t size, bool twice) {
    part.insert(part.size() - (twice ? 4 : 2), size - part.size(), 'a');
}

// A client that sends `head`, then `piece` again and again without pause, until the server closes
// the connection or `limit` bytes are sent. Returns the bytes it sent: below `limit` means the
// server put an end to it.
std::size_t send_without_pause(
    std::uint16_t port, std::string const& head, std::string_view piece, std::size_t limit
) {
    net::io_context ioc;
    tcp::socket sock{ioc};
    sock.connect({net::ip::make_address("127.0.0.1"), port});
    std::string repeated;
    while (repeated.size() < 64 * 1024) repeated += piece;
    boost::system::error_code ec;
    std::size_t sent = net::write(sock, net::buffer(head), ec);
    while (!ec && sent < limit) sent += net::write(sock, net::buffer(repeated), ec);
    return sent;
}

constexpr std::size_t quarter_gib = std::size_t(256) << 20;
constexpr std::size_t four_gib = std::size_t(4) << 30;

// A request whose chunked body never ends: chunks within every size limit, sent without pause.
std::string const chunked_post =
    "POST /api/aggregate/wg HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
std::string const small_chunk = "1;e=" + std::string(4000, 'a') + "\r\nx\r\n";

// An upstream's first connection: its request read, `answer` written at once, then read until the
// client leaves.
net::awaitable<void> answer_once(tcp::acceptor& acceptor, std::string answer) {
    auto [aec, sock] = co_await acceptor.async_accept(net::as_tuple(net::use_awaitable));
    if (aec) co_return;
    std::string request;
    auto [ec, n] = co_await net::async_read_until(
        sock, net::dynamic_buffer(request), "\r\n\r\n", net::as_tuple(net::use_awaitable)
    );
    if (!ec)
        std::tie(ec, n) =
            co_await net::async_write(sock, net::buffer(answer), net::as_tuple(net::use_awaitable));
    char sink[4096];
    while (!ec)
        std::tie(ec, n) = co_await sock.async_read_some(net::buffer(sink), net::as_tuple(net::use_awaitable));
}

std::string error_kind_of(aggregate_answer const& a, std::string_view service) {
    auto const* e = a.body.at("errors").as_object().if_contains(service);
    return e ? std::string(e->at("kind").as_string()) : std::string("none");
}

std::string error_message_of(aggregate_answer const& a, std::string_view service) {
    return std::string(a.body.at("errors").at(service).at("message").as_string());
}

}  // namespace

BOOST_AUTO_TEST_SUITE(test_wire)

// The head (start line included), each chunk-size line with its extensions, and the last chunk with
// the trailer section may each be as large as the limit and no larger, in one piece or many: Beast
// counts only the header fields, a line at a time, and none of the chunked framing.
BOOST_AUTO_TEST_CASE(framing_sections_are_held_to_the_head_limit) {
    constexpr std::size_t limit = 1024;
    auto check = [&]<class Parser>(Parser*, bool request) {
        for (int part = 0; part < 4; ++part) {
            for (std::size_t size : {limit, limit + 1}) {
                auto m = chunked(request);
                if (part == 0) pad_to(m.head, size, true);
                if (part == 1) pad_to(m.first, size, false);
                if (part == 2) pad_to(m.second, size, false);
                if (part == 3) pad_to(m.trailers, size, true);
                boost::beast::error_code const over =
                    part == 0 ? http::error::header_limit : http::error::buffer_overflow;
                auto const text = m.text();
                for (std::size_t piece :
                     {text.size(), std::size_t(1), std::size_t(7), limit - 1, limit + 3}) {
                    auto ec = parse_by<Parser>(text, piece, limit);
                    BOOST_TEST(
                        (size == limit ? !ec : ec == over), (request ? "request" : "response")
                                                                << " part " << part << " size " << size
                                                                << " piece " << piece << ": " << ec.message()
                    );
                }
            }
        }
    };
    check(static_cast<fanout::request_parser*>(nullptr), true);
    check(static_cast<fanout::response_parser*>(nullptr), false);
}

// A read that starts inside a chunk's data and goes on past its end: the framing after the data
// is held to the limit all the same (Beast would take it whole with the data).
BOOST_AUTO_TEST_CASE(framing_after_chunk_data_in_the_same_read_is_held_to_the_limit) {
    constexpr std::size_t limit = 1024;
    std::string const big(2 * limit, 'a');
    auto check = [&]<class Parser>(Parser*, bool request) {
        auto const start = chunked(request).head + "5\r\nab";  // the second read starts inside the data
        for (std::string const& rest :
             {"cde\r\n1;e=" + big + "\r\nx\r\n0\r\n\r\n", "cde\r\n0\r\nX-T: " + big + "\r\n\r\n"}) {
            auto const ec = parse_pieces<Parser>({start, rest}, limit);
            BOOST_TEST(
                (ec == http::error::buffer_overflow), (request ? "request: " : "response: ") << ec.message()
            );
        }
    };
    check(static_cast<fanout::request_parser*>(nullptr), true);
    check(static_cast<fanout::response_parser*>(nullptr), false);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(test_hostile)

// The Host values a short path accepts without the URL parser are those the parser accepts; the
// others (its quirks included: an IPv4 address followed by more of a name is refused) go to it.
BOOST_AUTO_TEST_CASE(host_values_are_judged_as_the_url_parser_does) {
    for (std::string_view host :
         {"a",
          "localhost",
          "localhost:8080",
          "a:",
          "a:99999999999999999999",
          "A.b-c_d~e",
          "127.0.0.1",
          "127.0.0.1:18099",
          "255.255.255.255:1",
          "0.0.0.0",
          "01.2.3.4",
          "256.1.1.1",
          "1.2.3",
          "1.2.3.4.5",
          "1.2.3.4a",
          "1.2.3.4.",
          "1.2.3.4-",
          "1.2.3.4_",
          "1.2.3.456",
          "a1.2.3.4.5",
          "1a",
          "-a",
          ".",
          "a..b",
          "a:1:2",
          "a:x",
          "[::1]:8080",
          "[::1",
          "user@a",
          "a b",
          "a%41",
          "a%4",
          "a,b",
          ":80",
          "::1"}) {
        auto const authority = boost::urls::parse_authority({host.data(), host.size()});
        bool const valid = authority && !authority->has_userinfo();
        auto const request = "GET / HTTP/1.1\r\nHost: " + std::string(host) + "\r\n\r\n";
        request_parser parser;
        boost::beast::flat_buffer buffer;
        buffer.commit(net::buffer_copy(buffer.prepare(request.size()), net::buffer(request)));
        auto const ec = wire::parse_buffered(parser, buffer, 8192);
        BOOST_TEST(!ec == valid, host);  // a refused request stops the parser
        BOOST_TEST((parser.refused() == request_parser::refusal::bad_host) == !valid, host);
    }
}

BOOST_AUTO_TEST_CASE(upstream_endless_chunk_line_or_trailers_fail_as_protocol) {
    for (auto behaviour : {sim_behaviour::endless_chunk_ext, sim_behaviour::endless_trailers}) {
        harness h{{sim("users", behaviour), sim("orders")}};
        auto a = get(h.port(), "/api/aggregate/wg");
        BOOST_TEST(a.status == 200u);
        BOOST_TEST(error_kind_of(a, "users") == "protocol");
        BOOST_TEST(error_message_of(a, "users").find("16384 bytes") != std::string::npos);
        BOOST_TEST(error_kind_of(a, "orders") == "none");
    }
}

// The upstream never stops sending a body that stays under the size limit: the deadline still
// ends the fetch, as a timeout, and the connection is closed.
BOOST_AUTO_TEST_CASE(deadline_holds_against_an_upstream_that_never_stops_sending) {
    fanout::options opts;
    opts.max_upstream_body = std::size_t(1) << 30;
    harness h{{sim("users", sim_behaviour::endless_body), sim("orders")}, opts};
    for (std::string pattern : {"channel-with-context-timeout", "errgroup"}) {
        auto a = get(h.port(), "/api/aggregate/" + pattern + "?timeout_ms=200", 30s);
        BOOST_TEST(a.status == (pattern == "errgroup" ? 504u : 200u), pattern);
        BOOST_TEST(error_kind_of(a, "users") == "timeout", pattern);
    }
    BOOST_TEST(h.counters("users").connections == 2u);  // each closed, none pooled
}

// The same with a service timeout sooner than the request's deadline.
BOOST_AUTO_TEST_CASE(a_service_timeout_holds_against_an_upstream_that_never_stops_sending) {
    fanout::options opts;
    opts.max_upstream_body = std::size_t(1) << 30;
    opts.upstreams.push_back(fanout::make_service("users", "http://127.0.0.1:1/users"));
    opts.upstreams.back().timeout = 200ms;
    harness h{{sim("users", sim_behaviour::endless_body), sim("orders")}, opts};
    auto a = get(h.port(), "/api/aggregate/channel-with-context-timeout?timeout_ms=10000", 30s);
    BOOST_TEST(a.status == 200u);
    BOOST_TEST(error_kind_of(a, "users") == "timeout", json::serialize(a.body));
}

// An upstream that answers twice: the second answer arrives while the connection is idle in the
// pool, so the connection must not be reused, or the next fetch would take that answer for its own.
BOOST_AUTO_TEST_CASE(an_unsolicited_answer_discards_the_pooled_connection) {
    net::io_context ioc{1};
    fanout::simulator sim{
        ioc.get_executor(), {fanout::sim_service{.name = "users", .behaviour = sim_behaviour::unsolicited}}};
    fanout::client client{ioc.get_executor(), {fanout::make_service("users", sim.url(0))}, {}};
    sim.start();
    for (std::uint64_t round = 1; round <= 3; ++round) {
        std::optional<fanout::fetch_result> result;
        net::co_spawn(ioc, client.fetch(0), [&](std::exception_ptr, fanout::fetch_result r) {
            result = std::move(r);
        });
        while (!result || sim.counters(0).unsolicited < round) BOOST_TEST_REQUIRE(ioc.run_one_for(10s) > 0u);
        BOOST_TEST_REQUIRE(result->ok());
        BOOST_TEST(result->body == fanout::sim_body("users"));
    }
    BOOST_TEST(client.stats().retried == 2u);
    BOOST_TEST(client.stats().opened == 3u);
    BOOST_TEST(client.stats().reused == 0u);
    sim.cancel();
    ioc.run_for(100ms);
}

BOOST_AUTO_TEST_CASE(a_client_endless_chunk_line_or_trailers_get_400_and_close) {
    harness h{{sim("users")}};
    BOOST_TEST(send_without_pause(h.port(), chunked_post + "2;e=", "a", quarter_gib) < quarter_gib);
    BOOST_TEST(send_without_pause(h.port(), chunked_post + "0\r\n", "X-T: 1\r\n", quarter_gib) < quarter_gib);
    BOOST_TEST(eventually([&] {
        auto text = fetch(h.port(), "/metrics")->body();
        return metric(text, R"(fanout_requests_total{endpoint="other",route="",code="400"})") == 2;
    }));
}

// Beast takes a chunk-size line or a trailer section whole when it arrives in one read.
BOOST_AUTO_TEST_CASE(a_client_long_chunk_line_or_trailers_in_one_write_get_400_and_close) {
    harness h{{sim("users")}};
    std::string const long_text(60'000, 'a');
    for (auto const& body :
         {"1;e=" + long_text + "\r\nx\r\n0\r\n\r\n", "0\r\nX-T: " + long_text + "\r\n\r\n"}) {
        blocking_client c{h.port()};
        c.send(chunked_post + body);
        auto res = c.read();
        BOOST_TEST_REQUIRE(res.has_value());
        BOOST_TEST(res->result_int() == 400u);
        BOOST_TEST(res->body().find("chunk-size line or trailers too large") != std::string::npos);
        BOOST_TEST(c.closed_by_server());
    }
}

// --max-request-head counts the whole head: request line, fields and the empty line.
BOOST_AUTO_TEST_CASE(the_request_head_limit_counts_the_request_line) {
    fanout::options opts;
    opts.max_request_head = 1024;
    harness h{{sim("users")}, opts};
    auto head_of = [](std::size_t size) {
        std::string head = "GET /healthz?pad=";
        std::string const rest = " HTTP/1.1\r\nHost: x\r\n\r\n";
        head.append(size - head.size() - rest.size(), 'a');
        return head + rest;
    };
    blocking_client at{h.port()};
    at.send(head_of(1024));
    auto r1 = at.read();
    BOOST_TEST_REQUIRE(r1.has_value());
    BOOST_TEST(r1->result_int() == 200u);
    blocking_client over{h.port()};
    over.send(head_of(1025));
    auto r2 = over.read();
    BOOST_TEST_REQUIRE(r2.has_value());
    BOOST_TEST(r2->result_int() == 431u);
    BOOST_TEST(over.closed_by_server());
}

// An upstream answer with a long chunk-size line or trailer section, written at once.
BOOST_AUTO_TEST_CASE(upstream_long_chunk_line_or_trailers_in_one_write_fail_as_protocol) {
    std::string const head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    std::string const long_text(60'000, 'a');
    for (auto const& body :
         {"2;e=" + long_text + "\r\n{}\r\n0\r\n\r\n", "2\r\n{}\r\n0\r\nX-T: " + long_text + "\r\n\r\n"}) {
        net::io_context ioc{1};
        tcp::acceptor acceptor{ioc, {net::ip::make_address("127.0.0.1"), 0}};
        net::co_spawn(ioc, answer_once(acceptor, head + body), net::detached);
        auto const url = "http://127.0.0.1:" + std::to_string(acceptor.local_endpoint().port()) + "/users";
        fanout::client client{ioc.get_executor(), {fanout::make_service("users", url)}, {}};
        std::optional<fanout::fetch_result> result;
        net::co_spawn(ioc, client.fetch(0), [&](std::exception_ptr, fanout::fetch_result r) {
            result = std::move(r);
        });
        while (!result) BOOST_TEST_REQUIRE(ioc.run_one_for(10s) > 0u);
        BOOST_TEST_REQUIRE(result->error.has_value());
        BOOST_TEST((result->error->kind == fanout::error_kind::protocol));
        BOOST_TEST(
            result->error->message.find("larger than 16384 bytes") != std::string::npos,
            result->error->message
        );
        acceptor.close();
        ioc.run_for(100ms);
    }
}

// Chunks within every size limit, sent without pause: the header timeout still closes the connection.
BOOST_AUTO_TEST_CASE(header_timeout_holds_against_a_client_that_never_stops_sending) {
    fanout::options opts;
    opts.header_timeout = 200ms;
    opts.max_request_body = std::size_t(1) << 30;
    harness h{{sim("users")}, opts};
    BOOST_TEST(send_without_pause(h.port(), chunked_post, small_chunk, four_gib) < four_gib);
    // Counted as the session ends, which a scrape on another event loop may precede.
    BOOST_TEST(eventually([&] {
        return metric(fetch(h.port(), "/metrics")->body(), "fanout_connections_timed_out_total") == 1;
    }));
}

BOOST_AUTO_TEST_CASE(shutdown_grace_holds_against_a_client_that_never_stops_sending) {
    fanout::options opts;
    opts.header_timeout = 60s;
    opts.max_request_body = std::size_t(1) << 30;
    harness h{{sim("users")}, opts};
    auto const port = h.port();  // read here: the shutdown closes the acceptor on another thread
    std::size_t sent = 0;
    std::thread sender{[&] { sent = send_without_pause(port, chunked_post, small_chunk, four_gib); }};
    BOOST_TEST_REQUIRE(eventually([&] { return h.server().metrics().open_connections() > 0; }));
    for (std::size_t i = 0; i < h.threads(); ++i) h.server(i).shutdown(200ms);
    BOOST_TEST(h.wait_stopped(30s));
    sender.join();
    BOOST_TEST(sent < four_gib);
}

BOOST_AUTO_TEST_SUITE_END()
