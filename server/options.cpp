#include "server/options.hpp"

#include <boost/program_options.hpp>

#include <charconv>
#include <limits>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace fanout::server {

namespace po = boost::program_options;

namespace {

// Numbers are read as signed 64-bit first: program_options would wrap "-1" into a huge unsigned.
std::int64_t in_range(po::variables_map const& vm, char const* flag, std::int64_t lo, std::int64_t hi) {
    auto v = vm[flag].as<std::int64_t>();
    if (v < lo || v > hi) {
        throw std::invalid_argument(
            "--" + std::string(flag) + ": " + std::to_string(v) + " is out of range [" + std::to_string(lo) +
            ", " + std::to_string(hi) + "]"
        );
    }
    return v;
}

void parse_listen(std::string const& value, options& opts) {
    auto bad = [&] { return std::invalid_argument("--listen: expected HOST:PORT, got '" + value + "'"); };
    auto colon = value.rfind(':');
    if (colon == std::string::npos || colon == 0) throw bad();
    auto host = value.substr(0, colon);
    if (host.front() == '[') {
        if (host.back() != ']' || host.size() < 3) throw bad();
        host = host.substr(1, host.size() - 2);
    }
    auto port = std::string_view(value).substr(colon + 1);
    unsigned p = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (port.empty() || ec != std::errc{} || end != port.data() + port.size() || p > 65535) throw bad();
    opts.listen_host = host;
    opts.listen_port = static_cast<std::uint16_t>(p);
}

}  // namespace

command_line parse_command_line(int argc, char const* const* argv) {
    auto const cores = std::max(1u, std::thread::hardware_concurrency());
    po::options_description desc{"fanout [options]"};
    // clang-format off
    desc.add_options()
        ("listen", po::value<std::string>()->default_value("127.0.0.1:8080"),
            "HOST:PORT to serve on (port 0: pick a free port)")
        ("threads", po::value<std::int64_t>()->default_value(cores), "event loops (threads)")
        ("upstream", po::value<std::vector<std::string>>()->composing(),
            "NAME=URL of a service to aggregate, repeatable, in order; without any: the embedded "
            "simulated services users, orders, inventory on loopback")
        ("timeout-ms", po::value<std::int64_t>()->default_value(1000),
            "deadline of the context-timeout and errgroup endpoints")
        ("max-timeout-ms", po::value<std::int64_t>()->default_value(10000), "cap for ?timeout_ms=")
        ("max-upstream-body", po::value<std::int64_t>()->default_value(1024 * 1024),
            "largest upstream body accepted, in bytes")
        ("upstream-pool-size", po::value<std::int64_t>()->default_value(64),
            "idle keep-alive connections kept per service and thread")
        ("help", "show this help")
        ("version", "show the version");
    // clang-format on

    po::variables_map vm;
    po::store(po::command_line_parser(argc, argv).options(desc).run(), vm);
    po::notify(vm);

    command_line cl;
    if (vm.count("help")) {
        std::ostringstream out;
        out << desc;
        cl.what = command_line::action::help;
        cl.help = out.str();
        return cl;
    }
    if (vm.count("version")) {
        cl.what = command_line::action::version;
        return cl;
    }

    auto& o = cl.opts;
    parse_listen(vm["listen"].as<std::string>(), o);
    o.threads = static_cast<unsigned>(in_range(vm, "threads", 1, 256));
    o.timeout = std::chrono::milliseconds(in_range(vm, "timeout-ms", 1, 3'600'000));
    o.max_timeout = std::chrono::milliseconds(in_range(vm, "max-timeout-ms", 1, 3'600'000));
    if (o.timeout > o.max_timeout)
        throw std::invalid_argument("--timeout-ms: must not exceed --max-timeout-ms");
    o.max_upstream_body =
        static_cast<std::size_t>(in_range(vm, "max-upstream-body", 1, std::int64_t(1) << 30));
    o.upstream_pool_size = static_cast<std::size_t>(in_range(vm, "upstream-pool-size", 0, 100'000));

    if (vm.count("upstream")) {
        std::set<std::string> names;
        for (auto const& spec : vm["upstream"].as<std::vector<std::string>>()) {
            try {
                o.upstreams.push_back(upstream::parse_service(spec));
            } catch (std::invalid_argument const& e) {
                throw std::invalid_argument(std::string("--upstream: ") + e.what());
            }
            if (!names.insert(o.upstreams.back().name).second)
                throw std::invalid_argument(
                    "--upstream: service '" + o.upstreams.back().name + "' given twice"
                );
        }
    }
    return cl;
}

}  // namespace fanout::server
