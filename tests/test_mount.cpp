// fanout's endpoints mounted in an application's own server: aggregator::handle.

#include "tests/support.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>

#include <fanout/aggregator.hpp>

using namespace fanout;
using namespace fanout::test;
namespace net = boost::asio;
namespace http = boost::beast::http;
namespace json = boost::json;

namespace {

// An aggregator and its simulated upstreams on one loop, driven from the test thread.
struct mounted {
    net::io_context ioc{1};
    fanout::simulator sim;
    fanout::aggregator agg;

    explicit mounted(std::vector<fanout::sim_service> services, std::vector<fanout::service> extra = {})
        : sim(ioc.get_executor(), std::move(services)), agg(ioc.get_executor(), opts(sim, std::move(extra))) {
        sim.start();
    }
    ~mounted() {
        sim.cancel();
        ioc.run_for(std::chrono::milliseconds(50));
    }

    static fanout::options opts(fanout::simulator const& s, std::vector<fanout::service> extra) {
        fanout::options o;
        for (std::size_t i = 0; i < s.size(); ++i)
            o.upstreams.push_back(fanout::make_service(s.name(i), s.url(i)));
        for (auto& e : extra) o.upstreams.push_back(std::move(e));
        return o;
    }

    fanout::aggregator::response_type handle(http::verb method, std::string target) {
        std::optional<fanout::aggregator::response_type> res;
        ioc.restart();  // it stops whenever it runs out of work
        net::co_spawn(ioc, agg.handle(method, std::move(target)), [&](std::exception_ptr e, auto r) {
            BOOST_TEST(!e);
            res = std::move(r);
        });
        for (int i = 0; i < 100 && !res; ++i) ioc.run_one_for(std::chrono::milliseconds(100));
        BOOST_TEST_REQUIRE(res.has_value());
        return std::move(*res);
    }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(test_mount)

BOOST_AUTO_TEST_CASE(a_request_gets_the_complete_aggregate_response) {
    mounted m{{sim("users"), sim("orders")}};
    auto res = m.handle(http::verb::get, "/api/aggregate/wg");
    BOOST_TEST(res.result_int() == 200);
    BOOST_TEST(res[http::field::content_type] == "application/json");
    BOOST_TEST(res["X-Aggregate-Complete"] == "true");
    BOOST_TEST(res[http::field::content_length] == std::to_string(res.body().size()));
    auto body = json::parse(res.body()).as_object();
    BOOST_TEST(body.at("results").as_object().contains("users"));
    BOOST_TEST(body.at("results").as_object().contains("orders"));
}

BOOST_AUTO_TEST_CASE(failures_and_bad_requests_answer_as_fanouts_server_does) {
    mounted m{{sim("users"), sim("orders", sim_behaviour::fail)}};
    auto failed = m.handle(http::verb::get, "/api/aggregate/errgroup");
    BOOST_TEST(failed.result_int() == 502);
    BOOST_TEST(failed["X-Aggregate-Complete"] == "false");
    BOOST_TEST(m.handle(http::verb::get, "/api/nope").result_int() == 404);
    BOOST_TEST(m.handle(http::verb::get, "/api/aggregate/wg?timeout_ms=-1").result_int() == 400);
    auto post = m.handle(http::verb::post, "/api/aggregate/wg");
    BOOST_TEST(post.result_int() == 405);
    BOOST_TEST(post[http::field::allow] == "GET, HEAD");
    auto get = m.handle(http::verb::get, "/healthz");
    auto head = m.handle(http::verb::head, "/healthz");
    BOOST_TEST(head.result_int() == 200);
    BOOST_TEST(head.body().empty());
    BOOST_TEST(head[http::field::content_length] == std::to_string(get.body().size()));
    auto metrics = m.handle(http::verb::get, "/metrics");
    BOOST_TEST(
        metric(
            metrics.body(),
            R"(fanout_requests_total{endpoint="errgroup",route="/api/aggregate/errgroup",code="502"})"
        ) == 1
    );
}

BOOST_AUTO_TEST_CASE(placeholders_come_from_the_query) {
    mounted m{
        {}, {fanout::make_service("users", "http://127.0.0.1:" + std::to_string(closed_port()) + "/u/{id}")}};
    BOOST_TEST(m.handle(http::verb::get, "/api/aggregate/wg").result_int() == 400);
    auto res = m.handle(http::verb::get, "/api/aggregate/wg?id=7");
    BOOST_TEST(res.result_int() == 502);  // it got as far as connecting
    BOOST_TEST(res.body().find(R"("kind":"connect")") != std::string::npos, res.body());
}

BOOST_AUTO_TEST_CASE(cancelling_a_handle_cancels_its_fetches) {
    mounted m{{sim("users", sim_behaviour::hang)}};
    net::cancellation_signal cancel;
    std::optional<fanout::aggregator::response_type> res;
    m.agg.async_handle(
        http::verb::get, "/api/aggregate/wg", 11,
        net::bind_cancellation_slot(
            cancel.slot(),
            [&](boost::system::error_code ec, fanout::aggregator::response_type r) {
                BOOST_TEST(!ec);
                res = std::move(r);
            }
        )
    );
    for (int i = 0; i < 100 && m.sim.counters(0).requests == 0; ++i)
        m.ioc.run_one_for(std::chrono::milliseconds(100));
    cancel.emit(net::cancellation_type::terminal);
    for (int i = 0; i < 100 && !res; ++i) m.ioc.run_one_for(std::chrono::milliseconds(100));
    BOOST_TEST_REQUIRE(res.has_value());
    BOOST_TEST(res->result_int() == 502);
    BOOST_TEST(res->body().find(R"("kind":"cancelled")") != std::string::npos, res->body());
    for (int i = 0; i < 100 && m.sim.counters(0).abandoned == 0; ++i)
        m.ioc.run_one_for(std::chrono::milliseconds(10));
    BOOST_TEST(m.sim.counters(0).abandoned == 1u);
}

BOOST_AUTO_TEST_SUITE_END()
