// The check of pooled connections before reuse (upstream/pool.hpp, idle_check): one poll() for the
// connections that the fetches started together take, whose verdict lasts one run of the loop.

#include "tests/support.hpp"
#include "wire/use_tuple.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/test/unit_test.hpp>

#include <fanout/client.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace net = boost::asio;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

namespace {

using fanout::wire::use_tuple;

// An upstream on the test's loop: answers each request with `{}` and keeps its connections, so that
// the test can send an answer nobody asked for on one of them while it is idle in the pool.
class scripted_upstream {
  public:
    explicit scripted_upstream(net::io_context& ioc)
        : acceptor_(ioc, {net::ip::make_address("127.0.0.1"), 0}) {
        accept();
    }

    std::string url() const {
        return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) + "/";
    }
    std::size_t connections() const { return sockets_.size(); }

    // A second answer on the connection that answered last. On loopback the bytes are in the
    // client's receive queue once this returns.
    void send_unsolicited() {
        static constexpr std::string_view extra =
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 14\r\n\r\n{\"stale\":true}";
        net::write(*last_, net::buffer(extra));
    }
    // Closes the connection that answered last.
    void close_last() { last_->close(); }

  private:
    void accept() {
        acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket s) {
            if (ec) return;
            sockets_.push_back(std::make_shared<tcp::socket>(std::move(s)));
            net::co_spawn(acceptor_.get_executor(), serve(sockets_.back()), net::detached);
            accept();
        });
    }

    net::awaitable<void> serve(std::shared_ptr<tcp::socket> s) {
        static constexpr std::string_view answer =
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
        std::string in;
        for (;;) {
            auto [ec, n] = co_await net::async_read_until(*s, net::dynamic_buffer(in), "\r\n\r\n", use_tuple);
            if (ec) co_return;
            in.erase(0, n);
            last_ = s;
            auto [wec, wn] = co_await net::async_write(*s, net::buffer(answer), use_tuple);
            if (wec) co_return;
        }
    }

    tcp::acceptor acceptor_;
    std::vector<std::shared_ptr<tcp::socket>> sockets_;
    std::shared_ptr<tcp::socket> last_;
};

struct two_upstreams {
    net::io_context ioc{1};
    scripted_upstream a{ioc}, b{ioc};
    fanout::client client{
        ioc.get_executor(), {fanout::make_service("a", a.url()), fanout::make_service("b", b.url())}, {}};

    // Fetches of the given services started together, as a handler starts them: their results.
    std::vector<fanout::fetch_result> fetch(std::vector<std::size_t> const& services) {
        std::vector<std::optional<fanout::fetch_result>> out(services.size());
        for (std::size_t i = 0; i < services.size(); ++i)
            net::co_spawn(
                ioc, client.fetch(services[i]),
                [&out, i](std::exception_ptr, fanout::fetch_result r) { out[i] = std::move(r); }
            );
        auto const done = [&] {
            for (auto const& r : out)
                if (!r) return false;
            return true;
        };
        ioc.restart();
        auto const give_up = std::chrono::steady_clock::now() + 10s;
        while (!done() && std::chrono::steady_clock::now() < give_up) ioc.run_one_for(100ms);
        BOOST_TEST_REQUIRE(done());
        std::vector<fanout::fetch_result> results;
        for (auto& r : out) {
            BOOST_TEST_REQUIRE(r->ok(), r->error->message);
            BOOST_TEST(r->body == "{}");  // never the answer nobody asked for
            results.push_back(std::move(*r));
        }
        return results;
    }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(test_idle_check)

// One poll() checks both pooled connections; the one with bytes is not reused.
BOOST_AUTO_TEST_CASE(fetches_started_together_reuse_only_the_quiet_connections) {
    two_upstreams t;
    t.fetch({0, 1});
    BOOST_TEST_REQUIRE(t.client.idle_connections(0) == 1u);
    BOOST_TEST_REQUIRE(t.client.idle_connections(1) == 1u);
    t.b.send_unsolicited();
    auto r = t.fetch({0, 1});
    BOOST_TEST((r[0].connection == fanout::connection_use::reused));
    BOOST_TEST((r[1].connection == fanout::connection_use::retried));
    t.b.send_unsolicited();  // on its new connection, now pooled
    r = t.fetch({1, 0});     // b takes its connection first this time, and polls both
    BOOST_TEST((r[0].connection == fanout::connection_use::retried));
    BOOST_TEST((r[1].connection == fanout::connection_use::reused));
    BOOST_TEST(t.client.stats().reused == 2u);
    BOOST_TEST(t.client.stats().retried == 2u);
    BOOST_TEST(t.a.connections() == 1u);
    BOOST_TEST(t.b.connections() == 3u);
}

// A connection found quiet with another pool's, and not taken then, is checked again when taken
// later: bytes may have arrived since.
BOOST_AUTO_TEST_CASE(a_verdict_serves_only_the_run_of_the_loop_it_was_made_in) {
    two_upstreams t;
    t.fetch({0, 1});
    auto const a_alone = t.fetch({0});  // polls b's pooled connection too: quiet then
    BOOST_TEST((a_alone[0].connection == fanout::connection_use::reused));
    t.b.send_unsolicited();
    auto const b_later = t.fetch({1});
    BOOST_TEST((b_later[0].connection == fanout::connection_use::retried));
    BOOST_TEST(t.b.connections() == 2u);
}

// Closed by the upstream while idle (an EOF), found by the same poll(): a new connection, and the
// fetch never sees it.
BOOST_AUTO_TEST_CASE(a_connection_closed_while_idle_is_replaced) {
    two_upstreams t;
    t.fetch({0, 1});
    t.b.close_last();
    auto const r = t.fetch({0, 1});
    BOOST_TEST((r[0].connection == fanout::connection_use::reused));
    BOOST_TEST((r[1].connection == fanout::connection_use::retried));
    BOOST_TEST(t.b.connections() == 2u);
}

BOOST_AUTO_TEST_SUITE_END()
