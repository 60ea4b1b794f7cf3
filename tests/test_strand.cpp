// An http_server on a strand of an io_context that several threads run: every request answered.

#include "tests/support.hpp"

#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/test/unit_test.hpp>

#include <fanout/http_server.hpp>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

using namespace fanout;
using namespace fanout::test;
namespace net = boost::asio;

namespace {

// One round: a server on a strand of a 3-thread io_context, clients sending requests back to back
// on keep-alive connections over every endpoint; returns the number of 200 answers.
int serve_one_round(fanout::simulator& sim, int connections, int requests_each) {
    net::io_context ioc{3};
    fanout::options opts;
    opts.listen_host = "127.0.0.1";
    opts.listen_port = 0;
    // Every answer counts, not how fast it comes: no deadline that a busy machine could reach.
    opts.timeout = opts.max_timeout = 60s;
    for (std::size_t i = 0; i < sim.size(); ++i)
        opts.upstreams.push_back(fanout::make_service(sim.name(i), sim.url(i)));
    opts.logger = std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::null_sink_mt>());
    fanout::http_server server{net::make_strand(ioc), opts};
    std::atomic<bool> stopped{false};
    server.async_run([&](boost::system::error_code) { stopped = true; });
    std::vector<std::thread> threads;
    for (int i = 0; i < 3; ++i) threads.emplace_back([&] { ioc.run(); });

    static char const* const targets[] = {
        "/api/aggregate/wg", "/api/aggregate/channel", "/api/aggregate/channel-with-context-timeout",
        "/api/aggregate/errgroup"};
    std::atomic<int> ok{0};
    std::vector<std::thread> clients;
    for (int c = 0; c < connections; ++c)
        clients.emplace_back([&, c] {
            blocking_client conn{server.local_endpoint().port()};
            for (int r = 0; r < requests_each; ++r) {
                conn.send_get(targets[(c + r) % 4]);
                auto res = conn.read(10s);
                if (!res) return;  // closed unanswered: the rest of this connection's requests are lost
                if (res->result_int() == 200u) ++ok;
            }
        });
    for (auto& t : clients) t.join();
    server.shutdown(1s);
    BOOST_TEST(eventually([&] { return stopped.load(); }, 10s));
    ioc.stop();
    for (auto& t : threads) t.join();
    return ok;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(test_strand)

BOOST_AUTO_TEST_CASE(a_server_on_a_strand_of_several_threads_answers_every_request) {
    net::io_context sim_loop{1};
    auto work = net::make_work_guard(sim_loop);
    fanout::simulator upstreams{
        sim_loop.get_executor(), {sim("users"), sim("orders"), sim("recommendations")}};
    upstreams.start();
    std::thread sim_thread{[&] { sim_loop.run(); }};
    for (int round = 0; round < 10; ++round) {
        int const ok = serve_one_round(upstreams, 8, 25);
        BOOST_TEST(ok == 200, "round " << round << ": " << ok << " answered");
    }
    net::post(sim_loop, [&] { upstreams.cancel(); });
    work.reset();
    sim_thread.join();
}

BOOST_AUTO_TEST_SUITE_END()
