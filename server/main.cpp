#include "server/http_server.hpp"
#include "server/options.hpp"
#include "upstream/simulator.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <exception>
#include <iostream>
#include <thread>

namespace net = boost::asio;
using namespace fanout;

namespace {

std::string http_url(net::ip::tcp::endpoint const& ep) {
    auto host = ep.address().is_v6() ? "[" + ep.address().to_string() + "]" : ep.address().to_string();
    return "http://" + host + ":" + std::to_string(ep.port());
}

}  // namespace

int main(int argc, char** argv) {
    server::command_line cl;
    try {
        cl = server::parse_command_line(argc, argv);
    } catch (std::exception const& e) {
        std::cerr << "fanout: " << e.what() << " (see --help)\n";
        return 2;
    }
    if (cl.what == server::command_line::action::help) {
        std::cout << cl.help;
        return 0;
    }
    if (cl.what == server::command_line::action::version) {
        std::cout << "fanout " FANOUT_VERSION "\n";
        return 0;
    }

    try {
        auto& opts = cl.opts;
        // One single-threaded event loop per thread: a request never leaves its thread, so the
        // awaitable operators and the upstream pools need no locks.
        std::vector<std::unique_ptr<net::io_context>> loops;
        for (unsigned i = 0; i < opts.threads; ++i) loops.push_back(std::make_unique<net::io_context>(1));

        std::unique_ptr<upstream::simulator> demo;
        if (opts.upstreams.empty()) {
            demo = std::make_unique<upstream::simulator>(
                loops[0]->get_executor(),
                std::vector<upstream::sim_service>{{"users"}, {"orders"}, {"inventory"}}
            );
            for (std::size_t i = 0; i < demo->size(); ++i) {
                opts.upstreams.push_back(upstream::make_service(demo->name(i), demo->url(i)));
                std::cout << "demo upstream " << demo->name(i) << " on " << demo->url(i) << "\n";
            }
            demo->start();
        }

        std::vector<std::unique_ptr<server::http_server>> servers;
        bool const reuse_port = opts.threads > 1;
        for (auto& loop : loops) {
            servers.push_back(std::make_unique<server::http_server>(loop->get_executor(), opts, reuse_port));
            opts.listen_port = servers.front()->local_endpoint().port();  // the others share the port
            servers.back()->start();
        }
        std::cout << "listening on " << http_url(servers.front()->local_endpoint()) << std::endl;

        net::signal_set signals{*loops[0], SIGINT, SIGTERM};
        signals.async_wait([&](boost::system::error_code ec, int) {
            if (ec) return;
            for (auto& loop : loops) loop->stop();
        });

        std::vector<std::jthread> threads;
        for (std::size_t i = 1; i < loops.size(); ++i)
            threads.emplace_back([&loop = *loops[i]] { loop.run(); });
        loops[0]->run();
    } catch (std::exception const& e) {
        std::cerr << "fanout: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
