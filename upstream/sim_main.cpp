#include "upstream/simulator.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/program_options.hpp>

#include <charconv>
#include <iostream>
#include <map>

namespace net = boost::asio;
namespace po = boost::program_options;
using namespace fanout::upstream;

namespace {

std::pair<std::string, std::string> split_pair(std::string const& flag, std::string const& value) {
    auto eq = value.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == value.size())
        throw std::invalid_argument("--" + flag + ": expected NAME=VALUE, got '" + value + "'");
    return {value.substr(0, eq), value.substr(eq + 1)};
}

std::vector<sim_service> services_from(po::variables_map const& vm) {
    std::vector<sim_service> services;
    for (auto const& spec : vm["service"].as<std::vector<std::string>>()) {
        auto [name, port_text] = split_pair("service", spec);
        unsigned port = 0;
        auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
        if (ec != std::errc{} || end != port_text.data() + port_text.size() || port > 65535)
            throw std::invalid_argument("--service: bad port in '" + spec + "'");
        sim_service s;
        s.name = name;
        s.port = static_cast<std::uint16_t>(port);
        s.latency = std::chrono::milliseconds(vm["latency-ms"].as<unsigned>());
        s.jitter = std::chrono::milliseconds(vm["jitter-ms"].as<unsigned>());
        s.error_rate = vm["error-rate"].as<double>();
        s.body_bytes = vm["body-bytes"].as<std::size_t>();
        if (s.error_rate < 0.0 || s.error_rate > 1.0)
            throw std::invalid_argument("--error-rate: must be in [0, 1]");
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
        ("hang", po::value<std::vector<std::string>>()->composing(),
            "NAME of a service that accepts and never answers, repeatable")
        ("behaviour", po::value<std::vector<std::string>>()->composing(),
            "NAME=ok|hang|fail|invalid_json|huge|garbage|close_early|close_after_response|early_hints|"
            "unsolicited|endless_chunk_ext|endless_trailers|endless_body|trickle|chaos, repeatable")
        ("help", "show this help");
    // clang-format on

    std::vector<sim_service> services;
    net::ip::address address;
    try {
        po::variables_map vm;
        po::store(po::parse_command_line(argc, argv, desc), vm);
        po::notify(vm);
        if (vm.count("help")) {
            std::cout << desc;
            return 0;
        }
        services = services_from(vm);
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
    } catch (std::exception const& e) {
        std::cerr << "fanout-sim: " << e.what() << "\n";
        return 1;
    }
}
