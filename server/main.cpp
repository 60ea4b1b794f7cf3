#include "server/check.hpp"
#include "server/command_line.hpp"
#include "server/config_dump.hpp"
#include "server/log.hpp"
#include "server/reload.hpp"
#include "server/warnings.hpp"
#include "sim/simulator.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <exception>
#include <fanout/http_server.hpp>
#include <fanout/options.hpp>
#include <iostream>
#include <spdlog/spdlog.h>
#include <thread>

namespace net = boost::asio;
using namespace fanout;

namespace {

std::string http_url(net::ip::tcp::endpoint const& ep) {
    auto host = ep.address().is_v6() ? "[" + ep.address().to_string() + "]" : ep.address().to_string();
    return "http://" + host + ":" + std::to_string(ep.port());
}

// What this instance is, once it listens: for whoever reads the log after a start or a restart.
void log_start(
    spdlog::logger& log,
    fanout::options const& opts,
    std::string const& listen,
    std::string const& admin,
    bool demo,
    std::vector<std::string> const& warnings
) {
    std::string upstreams;
    for (auto const& s : opts.upstreams) {
        if (!upstreams.empty()) upstreams += ',';
        upstreams += fmt::format(
            R"({{"name":{},"host":{},"port":{},"tls":{}}})", fanout::json_quote(s.name),
            fanout::json_quote(s.host), s.port, s.tls ? "true" : "false"
        );
    }
    std::string warning_list;
    for (auto const& w : warnings) warning_list += (warning_list.empty() ? "" : ",") + fanout::json_quote(w);
    log.info(
        R"({{"event":"start","version":"{}","listen":"{}","admin":{},"threads":{},"demo":{},"upstreams":[{}],)"
        R"("warnings":[{}]}})",
        FANOUT_VERSION, listen, admin.empty() ? "null" : "\"" + admin + "\"", opts.threads,
        demo ? "true" : "false", upstreams, warning_list
    );
}

// fanout --check: what a start would refuse is thrown as the start throws it; host names are
// resolved (a start does not wait for them) for at most 2 s in all.
int check(fanout::options const& opts) {
    fanout::check_startable(opts);
    auto warnings = fanout::config_warnings(opts);
    auto unresolved = fanout::resolution_warnings(opts, std::chrono::seconds(2));
    warnings.insert(warnings.end(), unresolved.begin(), unresolved.end());
    std::cout << fanout::describe(opts) << std::endl;
    for (auto const& w : warnings) std::cerr << "warning: " << w << "\n";
    return 0;
}

int serve(fanout::options opts, std::vector<std::string> args) {
    // A SIGHUP before its handler is set (while the servers are made) would end the process: it is
    // ignored until then, as a reload would have nothing new to apply yet.
    std::signal(SIGHUP, SIG_IGN);
    opts.logger = fanout::make_stderr_logger(opts.log_level);
    auto const configured = opts;  // before the start fills in a port or the demo services
    auto const warnings = fanout::config_warnings(opts);
    for (auto const& w : warnings)
        opts.logger->warn(R"({{"event":"config_warning","message":{}}})", fanout::json_quote(w));
    // One single-threaded event loop per thread: a request never leaves its thread, so the
    // awaitable operators and the upstream pools need no locks.
    std::vector<std::unique_ptr<net::io_context>> loops;
    for (unsigned i = 0; i < opts.threads; ++i) loops.push_back(std::make_unique<net::io_context>(1));

    std::unique_ptr<fanout::simulator> demo;
    if (opts.upstreams.empty()) {
        demo = std::make_unique<fanout::simulator>(
            loops[0]->get_executor(), std::vector<fanout::sim_service>{{"users"}, {"orders"}, {"inventory"}}
        );
        for (std::size_t i = 0; i < demo->size(); ++i) {
            opts.upstreams.push_back(fanout::make_service(demo->name(i), demo->url(i)));
            std::cout << "demo upstream " << demo->name(i) << " on " << demo->url(i) << "\n";
        }
        demo->start();
    }

    std::vector<std::string> names;
    for (auto const& s : opts.upstreams) names.push_back(s.name);
    auto registry =
        std::make_shared<fanout::metrics_registry>(names, loops.size(), fanout::route_labels(opts.routes));
    registry->include_process_metrics(true);
    std::vector<std::unique_ptr<fanout::http_server>> servers;
    for (std::size_t i = 0; i < loops.size(); ++i) {
        servers.push_back(std::make_unique<fanout::http_server>(
            loops[i]->get_executor(), opts, registry, i, /*reuse_port=*/loops.size() > 1
        ));
        opts.listen_port = servers.front()->local_endpoint().port();  // the others share the port
    }

    // Signals are handled, and reloads prepared, on a thread of their own: reading and checking a
    // configuration never holds up an event loop.
    net::io_context control{1};
    net::signal_set signals{control, SIGINT, SIGTERM};
    net::signal_set hangups{control, SIGHUP};
    std::vector<fanout::http_server*> server_list;
    for (auto& s : servers) server_list.push_back(s.get());
    fanout::process_reloader reloader{
        control.get_executor(), std::move(args), configured, std::move(server_list), opts.logger};
    bool stopping = false;  // on the control thread: no reload once a signal or the servers ended
    std::atomic<std::size_t> running{servers.size()};
    std::atomic<bool> failed{false};
    for (std::size_t i = 0; i < servers.size(); ++i) {
        servers[i]->async_run([&](boost::system::error_code e) {
            if (e) failed = true;  // logged where it happened
            // The last server to finish ends the signal handling, and the demo on the first loop.
            if (--running == 0) {
                net::post(control, [&] {
                    stopping = true;
                    signals.cancel();
                    hangups.cancel();
                });
                if (demo) net::post(*loops[0], [&] { demo->cancel(); });
            }
        });
    }
    std::cout << "listening on " << http_url(servers.front()->local_endpoint()) << std::endl;
    auto const admin = servers.front()->admin_endpoint();
    if (admin) std::cout << "admin listening on " << http_url(*admin) << std::endl;
    log_start(
        *opts.logger, opts, http_url(servers.front()->local_endpoint()), admin ? http_url(*admin) : "",
        demo != nullptr, warnings
    );

    std::function<void(boost::system::error_code, int)> on_signal = [&](boost::system::error_code ec,
                                                                        int sig) {
        if (ec) return;
        opts.logger->info(
            R"({{"event":"shutdown","signal":{},"drain_delay_ms":{},"grace_ms":{}}})", sig,
            reloader.configured().drain_delay.count(), reloader.configured().shutdown_grace.count()
        );
        stopping = true;
        hangups.cancel();
        for (auto& s : servers) s->shutdown();
        // A second signal does not wait for anything.
        signals.async_wait([](boost::system::error_code ec2, int sig2) {
            if (!ec2) std::_Exit(128 + sig2);
        });
    };
    signals.async_wait(on_signal);
    // One reload at a time; a SIGHUP that arrives meanwhile is handled after it.
    std::function<void(boost::system::error_code, int)> on_hangup = [&](boost::system::error_code ec, int) {
        if (ec || stopping) return;
        if (demo) {
            opts.logger->warn(
                R"({"event":"config_reload","reloaded":false,"message":"demo mode (no --config): nothing to reload"})"
            );
            hangups.async_wait(on_hangup);
            return;
        }
        reloader.reload([&] {
            if (!stopping) hangups.async_wait(on_hangup);
        });
    };
    hangups.async_wait(on_hangup);

    // An exception out of a loop is a bug: every loop stops, so that the process exits (1) instead
    // of waiting on the others.
    auto run = [&](net::io_context& loop) {
        try {
            loop.run();
        } catch (std::exception const& e) {
            opts.logger->critical(R"({{"event":"loop_failed","message":{}}})", fanout::json_quote(e.what()));
            failed = true;
            for (auto& l : loops) l->stop();
            control.stop();
        }
    };
    std::jthread control_thread{[&] { run(control); }};
    std::vector<std::jthread> threads;
    for (std::size_t i = 1; i < loops.size(); ++i)
        threads.emplace_back([&run, &loop = *loops[i]] { run(loop); });
    run(*loops[0]);
    threads.clear();  // joins
    control_thread.join();
    int const code = failed ? 1 : 0;
    opts.logger->info(R"({{"event":"stop","exit_code":{}}})", code);
    opts.logger->flush();
    return code;
}

}  // namespace

int main(int argc, char** argv) {
    fanout::command_line cl;
    try {
        cl = fanout::parse_command_line(argc, argv);
    } catch (std::exception const& e) {
        std::cerr << "fanout: " << e.what() << " (see --help)\n";
        return 2;
    }
    if (cl.what == fanout::command_line::action::help) {
        std::cout << cl.help;
        return 0;
    }
    if (cl.what == fanout::command_line::action::version) {
        std::cout << "fanout " FANOUT_VERSION "\n";
        return 0;
    }
    try {
        if (cl.what == fanout::command_line::action::check) return check(cl.opts);
        return serve(std::move(cl.opts), std::vector<std::string>(argv, argv + argc));
    } catch (std::exception const& e) {
        std::cerr << "fanout: " << e.what() << "\n";
        return 1;
    }
}
