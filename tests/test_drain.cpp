// Shutdown without loss, the drain delay, lingering close and `Expect: 100-continue`.
#include "tests/support.hpp"

#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <arpa/inet.h>
#include <array>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

using namespace fanout;
using namespace fanout::test;
namespace json = boost::json;
namespace net = boost::asio;

namespace {

// A plain socket whose writes and reads give up after a timeout: a test that streams a large body
// must fail, not hang, when the server stops reading.
class raw_connection {
  public:
    explicit raw_connection(std::uint16_t port, std::chrono::milliseconds timeout = 10s)
        : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
        timeval tv{};
        tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
        tv.tv_usec = static_cast<suseconds_t>(timeout.count() % 1000 * 1000);
        ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
            throw std::runtime_error("connect failed");
    }
    raw_connection(raw_connection const&) = delete;
    raw_connection& operator=(raw_connection const&) = delete;
    ~raw_connection() { ::close(fd_); }

    // False if the connection failed (reset, broken pipe) or the timeout passed.
    bool send(std::string_view bytes) {
        while (!bytes.empty()) {
            auto n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
            if (n <= 0) return false;
            bytes.remove_prefix(static_cast<std::size_t>(n));
        }
        return true;
    }

    // What arrives until `until` is found in it, the peer closes, an error or the timeout.
    std::string receive(std::string_view until = {}) {
        std::string got;
        char buf[4096];
        while (until.empty() || got.find(until) == std::string::npos) {
            auto n = ::recv(fd_, buf, sizeof buf, 0);
            if (n <= 0) break;
            got.append(buf, static_cast<std::size_t>(n));
        }
        return got;
    }

  private:
    int fd_;
};

unsigned status_of(std::string const& answer) {
    if (answer.rfind("HTTP/1.1 ", 0) != 0 || answer.size() < 12) return 0;
    return static_cast<unsigned>(std::stoi(answer.substr(9, 3)));
}

std::string get_with_body(std::string const& headers, std::string const& body) {
    return "GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + "\r\n" + body;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(test_drain)

// Each client sends its next request as soon as it has the answer to the last one; none may be
// left with a request sent and no answer. Every client ends on an answer saying Connection: close.
BOOST_AUTO_TEST_CASE(keep_alive_clients_lose_no_request_at_shutdown) {
    constexpr int connections = 16;
    for (int round = 0; round < 20; ++round) {
        BOOST_TEST_CONTEXT("round " << round) {
            std::atomic<int> unanswered{0}, closed_by_answer{0};
            std::array<std::atomic<int>, connections> answered{};
            std::vector<std::jthread> clients;  // joined after the harness is gone, if a check failed
            harness h{{sim("users"), sim("orders")}};
            for (int i = 0; i < connections; ++i) {
                clients.emplace_back([&, i, port = h.port()] {
                    try {
                        blocking_client c{port};
                        for (;;) {
                            c.send_get(i % 2 ? wg : "/healthz");
                            auto res = c.read(10s);
                            if (!res) {
                                ++unanswered;
                                return;
                            }
                            ++answered[i];
                            if (!res->keep_alive()) {
                                ++closed_by_answer;
                                return;
                            }
                        }
                    } catch (std::exception const&) {
                        ++unanswered;  // a write after the server reset the connection
                    }
                });
            }
            // Every client is connected and has had a few answers.
            BOOST_TEST_REQUIRE(eventually(
                [&] { return std::all_of(answered.begin(), answered.end(), [](auto& n) { return n >= 3; }); },
                10s
            ));
            shutdown_all(h, 5s);
            for (auto& t : clients) t.join();
            BOOST_TEST(unanswered == 0);
            BOOST_TEST(closed_by_answer == connections);
            BOOST_TEST(h.wait_stopped(5s));
        }
    }
}

BOOST_AUTO_TEST_CASE(pipelined_requests_behind_one_in_flight_are_answered) {
    harness h{{sim("users", sim_behaviour::ok, 300ms)}};
    blocking_client c{h.port()};
    std::string get = "GET " + wg + " HTTP/1.1\r\nHost: x\r\n\r\n";
    c.send(get + get + get);
    BOOST_TEST_REQUIRE(eventually([&] { return h.counters("users").requests == 1; }));  // in flight
    shutdown_all(h, 5s);
    for (int i = 0; i < 3; ++i) {
        BOOST_TEST_CONTEXT("answer " << i) {
            auto res = c.read(5s);
            BOOST_TEST_REQUIRE(res.has_value());
            BOOST_TEST(res->result_int() == 200u);
            BOOST_TEST(res->keep_alive() == (i < 2));  // the last one says the connection ends
        }
    }
    BOOST_TEST(c.closed_by_server());
    BOOST_TEST(h.wait_stopped(5s));
}

// A connection the kernel accepted, with its request sent, while every event loop was busy: the
// server has not accepted it yet when the shutdown begins. Closing the listener would reset it.
BOOST_AUTO_TEST_CASE(a_connection_still_in_the_listen_queue_is_answered) {
    harness h{{sim("users")}};
    std::promise<void> release;
    std::shared_future<void> released = release.get_future().share();
    std::atomic<std::size_t> blocked{0};
    for (std::size_t i = 0; i < h.threads(); ++i) {
        net::post(h.server(i).get_executor(), [&blocked, released] {
            ++blocked;
            released.wait();
        });
    }
    BOOST_TEST_REQUIRE(eventually([&] { return blocked == h.threads(); }));
    blocking_client c{h.port()};
    c.send_get("/healthz");
    shutdown_all(h, 5s, /*wait=*/false);  // runs on each loop once it is free, before its listener
    release.set_value();
    auto res = c.read(5s);
    BOOST_TEST_REQUIRE(res.has_value());
    BOOST_TEST(res->result_int() == 503u);  // /healthz while stopping
    BOOST_TEST(!res->keep_alive());
    BOOST_TEST(h.wait_stopped(5s));
}

BOOST_AUTO_TEST_CASE(drain_delay_serves_on_with_healthz_503_then_stops_accepting) {
    fanout::options opts;
    opts.drain_delay = 3000ms;
    harness h{{sim("users")}, opts};
    auto const port = h.port();  // not once the listeners are closed
    blocking_client before{port};
    before.send_get("/healthz");
    auto ok = before.read();
    BOOST_TEST_REQUIRE(ok.has_value());
    BOOST_TEST(ok->result_int() == 200u);
    BOOST_TEST(ok->keep_alive());

    for (std::size_t i = 0; i < h.threads(); ++i) h.server(i).shutdown();
    // Every loop is draining once each has answered 503 to /healthz (new connections land on any).
    BOOST_TEST_REQUIRE(eventually([&] {
        auto r = fetch(port, "/healthz");
        return r && r->result_int() == 503u;
    }));
    auto health = fetch(port, "/healthz");
    BOOST_TEST_REQUIRE(health.has_value());
    BOOST_TEST(json::parse(health->body()).at("status").as_string() == "draining");
    BOOST_TEST(!health->keep_alive());

    // New connections are still accepted and served, and closed after their answer.
    blocking_client during{port};
    during.send_get(wg);
    auto served = during.read();
    BOOST_TEST_REQUIRE(served.has_value());
    BOOST_TEST(served->result_int() == 200u);
    BOOST_TEST(!served->keep_alive());
    BOOST_TEST(during.closed_by_server());
    // So is a keep-alive connection opened before.
    before.send_get(wg);
    auto last = before.read();
    BOOST_TEST_REQUIRE(last.has_value());
    BOOST_TEST(last->result_int() == 200u);
    BOOST_TEST(!last->keep_alive());

    // Then the listeners close.
    BOOST_TEST(eventually([&] { return refuses_connections(port); }, 10s));
    BOOST_TEST(h.wait_stopped(5s));
}

BOOST_AUTO_TEST_CASE(shutdown_with_a_grace_ends_the_drain_delay) {
    fanout::options opts;
    opts.drain_delay = 60s;
    harness h{{sim("users")}, opts};
    auto const port = h.port();
    for (std::size_t i = 0; i < h.threads(); ++i) h.server(i).shutdown();
    BOOST_TEST_REQUIRE(eventually([&] {
        auto r = fetch(port, "/healthz");
        return r && r->result_int() == 503u;
    }));
    shutdown_all(h, 5s);
    BOOST_TEST(eventually([&] { return refuses_connections(port); }));
    BOOST_TEST(h.wait_stopped(5s));
}

BOOST_AUTO_TEST_SUITE_END()

// The client sends all of its request before it reads: closing with its bytes unread would reset
// the connection and destroy the answer.
BOOST_AUTO_TEST_SUITE(test_linger)

std::vector<fanout::sim_service> services_of_5_mib() {
    std::vector<fanout::sim_service> services;
    for (auto const* name : {"users", "orders", "inventory"}) {
        services.push_back(sim(name));
        services.back().body_bytes = 5 * 1024 * 1024;
    }
    return services;
}

std::string const wg_then_close = "GET " + wg + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

// An answer larger than any socket buffer (15 MiB): the server sends what the socket takes at
// once and the rest as the client reads. Every byte arrives, in order.
BOOST_AUTO_TEST_CASE(an_answer_larger_than_the_socket_buffers_arrives_whole) {
    fanout::options opts;
    opts.max_upstream_body = 6 * 1024 * 1024;
    harness h{services_of_5_mib(), opts};
    raw_connection c{h.port()};
    BOOST_TEST_REQUIRE(c.send(wg_then_close));
    auto const answer = c.receive();
    BOOST_TEST_REQUIRE(status_of(answer) == 200u);
    auto const head_end = answer.find("\r\n\r\n");
    BOOST_TEST_REQUIRE(head_end != std::string::npos);
    auto const length_at = answer.find("Content-Length: ");
    BOOST_TEST_REQUIRE(length_at < head_end);
    auto const body = answer.substr(head_end + 4);
    BOOST_TEST(std::stoul(answer.substr(length_at + 16)) == body.size());
    BOOST_TEST(body.size() > 15u * 1024 * 1024);
    auto const doc = json::parse(body);
    for (auto const* name : {"users", "orders", "inventory"})
        BOOST_TEST(doc.at("results").as_object().contains(name));
}

// A client that never reads a large answer holds only its own connection: what the socket did not
// take waits in an asynchronous write, the loops serve others meanwhile, and the connection ends
// at the header timeout.
BOOST_AUTO_TEST_CASE(a_client_that_never_reads_a_large_answer_blocks_no_one) {
    fanout::options opts;
    opts.max_upstream_body = 6 * 1024 * 1024;
    opts.header_timeout = 1s;
    harness h{services_of_5_mib(), opts};
    raw_connection stuck{h.port()};
    BOOST_TEST_REQUIRE(stuck.send(wg_then_close));
    auto got = stuck.receive("\r\n\r\n");  // the answer has begun: its write has started
    BOOST_TEST_REQUIRE(status_of(got) == 200u);
    for (int i = 0; i < 4; ++i) {  // on every loop of the harness; a blocked loop never answers
        auto r = fetch(h.port(), "/healthz", 5s);
        BOOST_TEST_REQUIRE(r.has_value());
        BOOST_TEST(r->result_int() == 200);
    }
    // Still not reading: the write's deadline (the header timeout) ends the connection.
    BOOST_TEST(
        eventually([&] { return metric(scrape(h.port()), "fanout_connections_timed_out_total") == 1; }, 10s)
    );
    got += stuck.receive();  // what was sent before the connection was closed
    BOOST_TEST(got.size() < 15u * 1024 * 1024);
}

BOOST_AUTO_TEST_CASE(a_4_mb_body_on_get_reads_its_413) {
    harness h{{sim("users")}};
    raw_connection c{h.port()};
    std::string const body(4 * 1024 * 1024, 'x');
    BOOST_TEST_REQUIRE(c.send(get_with_body("Content-Length: " + std::to_string(body.size()) + "\r\n", body))
    );
    auto answer = c.receive();
    BOOST_TEST(status_of(answer) == 413u);
    BOOST_TEST(answer.find("Connection: close") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(a_4_mb_chunked_body_streamed_on_get_reads_its_413) {
    harness h{{sim("users")}};
    raw_connection c{h.port()};
    BOOST_TEST_REQUIRE(c.send(get_with_body("Transfer-Encoding: chunked\r\n", "")));
    std::string const chunk = "10000\r\n" + std::string(0x10000, 'x') + "\r\n";
    bool sent = true;
    for (int i = 0; i < 64 && sent; ++i) sent = c.send(chunk);  // 4 MiB
    BOOST_TEST(sent);
    BOOST_TEST(status_of(c.receive()) == 413u);
}

BOOST_AUTO_TEST_CASE(a_malformed_request_with_more_bytes_behind_reads_its_400) {
    harness h{{sim("users")}};
    raw_connection c{h.port()};
    BOOST_TEST_REQUIRE(c.send("BAD REQUEST LINE\r\n\r\n" + std::string(1024 * 1024, 'x')));
    BOOST_TEST(status_of(c.receive()) == 400u);
}

BOOST_AUTO_TEST_CASE(a_connection_over_the_limit_reads_its_503) {
    fanout::options opts;
    opts.max_connections = 1;
    harness h{{sim("users")}, opts};
    blocking_client held{h.port()};
    held.send_get("/healthz");
    BOOST_TEST_REQUIRE(held.read().has_value());
    raw_connection over{h.port()};
    std::string const body(1024 * 1024, 'x');
    BOOST_TEST_REQUIRE(
        over.send(get_with_body("Content-Length: " + std::to_string(body.size()) + "\r\n", body))
    );
    BOOST_TEST(status_of(over.receive()) == 503u);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(test_expect)

BOOST_AUTO_TEST_CASE(expect_100_continue_gets_100_then_the_answer) {
    harness h{{sim("users")}};
    raw_connection c{h.port()};
    BOOST_TEST_REQUIRE(
        c.send("GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    );
    auto interim = c.receive("\r\n\r\n");
    BOOST_TEST(interim == "HTTP/1.1 100 Continue\r\n\r\n");
    BOOST_TEST_REQUIRE(c.send("hello"));
    auto final_answer = c.receive("\"ok\"}");
    BOOST_TEST(status_of(final_answer) == 200u);
}

BOOST_AUTO_TEST_CASE(expect_100_continue_with_a_body_too_large_gets_413_at_once) {
    harness h{{sim("users")}};
    raw_connection c{h.port()};
    BOOST_TEST_REQUIRE(
        c.send("GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 10000000\r\n\r\n")
    );
    BOOST_TEST(status_of(c.receive()) == 413u);  // then closed, with no body sent
}

BOOST_AUTO_TEST_CASE(no_100_when_the_body_has_started_or_none_is_expected) {
    harness h{{sim("users")}};
    raw_connection c{h.port()};
    BOOST_TEST_REQUIRE(
        c.send("GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello")
    );
    BOOST_TEST(status_of(c.receive("\"ok\"}")) == 200u);
    BOOST_TEST_REQUIRE(c.send("GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n"));
    BOOST_TEST(status_of(c.receive("\"ok\"}")) == 200u);
}

BOOST_AUTO_TEST_SUITE_END()
