#include "sim/simulator.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/program_options.hpp>

#include <charconv>
#include <iostream>
#include <map>

namespace net = boost::asio;
namespace po = boost::program_options;
using namespace fanout;

namespace {

std::pair<std::string, std::string> split_pair(std::string const& flag, std::string const& value) {
    auto eq = value.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == value.size())
        throw std::invalid_argument("--" + flag + ": expected NAME=VALUE, got '" + value + "'");
    return {value.substr(0, eq), value.substr(eq + 1)};
}

unsigned number(std::string const& flag, std::string const& text) {
    unsigned n = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc{} || end != text.data() + text.size())
        throw std::invalid_argument("--" + flag + ": '" + text + "' is not a number");
    return n;
}

std::vector<sim_service> services_from(po::variables_map const& vm) {
    std::vector<sim_service> services;
    for (auto const& spec : vm["service"].as<std::vector<std::string>>()) {
        auto [name, port_text] = split_pair("service", spec);
        auto const port = number("service", port_text);
        if (port > 65535) throw std::invalid_argument("--service: bad port in '" + spec + "'");
        sim_service s;
        s.name = name;
        s.port = static_cast<std::uint16_t>(port);
        s.latency = std::chrono::milliseconds(vm["latency-ms"].as<unsigned>());
        s.jitter = std::chrono::milliseconds(vm["jitter-ms"].as<unsigned>());
        s.error_rate = vm["error-rate"].as<double>();
        s.body_bytes = vm["body-bytes"].as<std::size_t>();
        if (s.error_rate < 0.0 || s.error_rate > 1.0)
            throw std::invalid_argument("--error-rate: must be in [0, 1]");
        if (vm.count("tail")) {
            auto const& text = vm["tail"].as<std::string>();
            auto colon = text.find(':');
            try {
                std::size_t used = 0;
                s.tail_ratio = std::stod(text.substr(0, colon), &used);
                if (colon == std::string::npos || used != colon) throw std::invalid_argument("");
                s.tail_latency = std::chrono::milliseconds(number("tail", text.substr(colon + 1)));
            } catch (std::exception const&) {
                throw std::invalid_argument("--tail: expected RATIO:MS, got '" + text + "'");
            }
            if (s.tail_ratio < 0.0 || s.tail_ratio > 1.0)
                throw std::invalid_argument("--tail: RATIO must be in [0, 1]");
        }
        s.deadline_header = vm["deadline-header"].as<std::string>();
        s.honour_deadline = vm.count("honour-deadline") > 0;
        s.default_budget = std::chrono::milliseconds(vm["budget-ms"].as<unsigned>());
        s.tls_cert = vm["tls-cert"].as<std::string>();
        s.tls_key = vm["tls-key"].as<std::string>();
        s.tls_client_ca = vm["tls-client-ca"].as<std::string>();
        if (s.tls_cert.empty() != s.tls_key.empty())
            throw std::invalid_argument("--tls-cert and --tls-key go together");
        if (!s.tls_client_ca.empty() && s.tls_cert.empty())
            throw std::invalid_argument("--tls-client-ca needs --tls-cert and --tls-key");
        services.push_back(std::move(s));
    }
    auto find = [&](std::string const& flag, std::string const& name) -> sim_service& {
        for (auto& s : services)
            if (s.name == name) return s;
        throw std::invalid_argument("--" + flag + ": no service named '" + name + "'");
    };
    if (vm.count("hang"))
        for (auto const& name : vm["hang"].as<std::vector<std::string>>())
            find("hang", name).behaviour = sim_behaviour::hang;
    if (vm.count("outage")) {
        for (auto const& spec : vm["outage"].as<std::vector<std::string>>()) {
            auto [name, when] = split_pair("outage", spec);
            auto& s = find("outage", name);
            auto first = when.find(':');
            auto second = when.find(':', first == std::string::npos ? first : first + 1);
            if (first == std::string::npos)
                throw std::invalid_argument(
                    "--outage: expected NAME=AFTER_S:FOR_S[:hang], got '" + spec + "'"
                );
            auto mode = second == std::string::npos ? std::string() : when.substr(second + 1);
            if (!mode.empty() && mode != "hang" && mode != "refuse")
                throw std::invalid_argument("--outage: the mode is hang or refuse, got '" + mode + "'");
            s.outage_after = std::chrono::seconds(number("outage", when.substr(0, first)));
            s.outage_for = std::chrono::seconds(number("outage", when.substr(first + 1, second - first - 1)));
            s.outage_hangs = mode == "hang";
        }
    }
    if (vm.count("behaviour")) {
        for (auto const& spec : vm["behaviour"].as<std::vector<std::string>>()) {
            auto [name, behaviour] = split_pair("behaviour", spec);
            try {
                find("behaviour", name).behaviour = parse_sim_behaviour(behaviour);
            } catch (std::invalid_argument const& e) {
                throw std::invalid_argument(std::string("--behaviour: ") + e.what());
            }
        }
    }
    return services;
}

}  // namespace

int main(int argc, char** argv) {
    po::options_description desc{"fanout-sim [options]: simulated upstream services on loopback"};
    // clang-format off
    desc.add_options()
        ("address", po::value<std::string>()->default_value("127.0.0.1"), "address to listen on")
        ("service", po::value<std::vector<std::string>>()->composing()->default_value(
            {"users=9101", "orders=9102", "inventory=9103"}, "users=9101 orders=9102 inventory=9103"),
            "NAME=PORT of a service, repeatable (port 0: any free port)")
        ("latency-ms", po::value<unsigned>()->default_value(0), "latency of every answer")
        ("jitter-ms", po::value<unsigned>()->default_value(0), "extra uniform latency in [0, jitter)")
        ("error-rate", po::value<double>()->default_value(0.0), "fraction of requests answered 500")
        ("body-bytes", po::value<std::size_t>()->default_value(0), "size of the healthy JSON answers (0: a few hundred bytes)")
        ("tail", po::value<std::string>(), "RATIO:MS, a heavy tail: that fraction of answers takes MS instead (e.g. 0.02:50)")
        ("outage", po::value<std::vector<std::string>>()->composing(),
            "NAME=AFTER_S:FOR_S[:hang], repeatable: from AFTER_S seconds after start, for FOR_S, the service "
            "refuses connections (or hangs)")
        ("deadline-header", po::value<std::string>()->default_value(""),
            "header of the caller's time left (e.g. X-Request-Timeout-Ms): work goes on after the caller leaves, "
            "and work past its budget is counted")
        ("honour-deadline", "with --deadline-header: stop working when the caller's budget is spent (answer 504)")
        ("budget-ms", po::value<unsigned>()->default_value(0), "with --deadline-header: the budget of a request without it")
        ("tls-cert", po::value<std::string>()->default_value(""), "serve HTTPS with this PEM certificate chain")
        ("tls-key", po::value<std::string>()->default_value(""), "... and this PEM private key")
        ("tls-client-ca", po::value<std::string>()->default_value(""),
            "require a client certificate signed by this PEM CA (mutual TLS)")
        ("counters", "print each service's counters to stdout at exit")
        ("hang", po::value<std::vector<std::string>>()->composing(),
            "NAME of a service that accepts and never answers, repeatable")
        ("behaviour", po::value<std::vector<std::string>>()->composing(),
            "NAME=ok|hang|fail|invalid_json|huge|garbage|close_early|close_after_response|early_hints|"
            "unsolicited|endless_chunk_ext|endless_trailers|endless_body|trickle|chaos, repeatable")
        ("help", "show this help");
    // clang-format on

    std::vector<sim_service> services;
    net::ip::address address;
    bool print_counters = false;
    try {
        po::variables_map vm;
        po::store(po::parse_command_line(argc, argv, desc), vm);
        po::notify(vm);
        if (vm.count("help")) {
            std::cout << desc;
            return 0;
        }
        services = services_from(vm);
        print_counters = vm.count("counters") > 0;
        auto text = vm["address"].as<std::string>();
        boost::system::error_code ec;
        address = net::ip::make_address(text, ec);
        if (ec) throw std::invalid_argument("--address: '" + text + "' is not an IP address");
    } catch (std::exception const& e) {
        std::cerr << "fanout-sim: " << e.what() << " (see --help)\n";
        return 2;
    }

    try {
        net::io_context ioc{1};
        simulator sim{ioc.get_executor(), std::move(services), address};
        for (std::size_t i = 0; i < sim.size(); ++i) std::cout << sim.name(i) << " on " << sim.url(i) << "\n";
        std::cout << std::flush;
        sim.start();
        net::signal_set signals{ioc, SIGINT, SIGTERM};
        signals.async_wait([&](boost::system::error_code ec, int) {
            if (!ec) ioc.stop();
        });
        ioc.run();
        if (print_counters) {
            for (std::size_t i = 0; i < sim.size(); ++i) {
                auto const& c = sim.counters(i);
                std::cout << sim.name(i) << ": connections " << c.connections << " requests " << c.requests
                          << " answered " << c.answered << " abandoned " << c.abandoned << " refused "
                          << c.refused << " late_work_ms " << c.late_work_ms << " deadline_stops "
                          << c.deadline_stops << " tls_full " << c.tls_full << " tls_resumed "
                          << c.tls_resumed << " tls_failed " << c.tls_failed << "\n";
            }
        }
    } catch (std::exception const& e) {
        std::cerr << "fanout-sim: " << e.what() << "\n";
        return 1;
    }
}
