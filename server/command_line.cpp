#include "server/command_line.hpp"

#include "server/route_table.hpp"
#include "server/settings.hpp"
#include "wire/json_text.hpp"

#include <boost/program_options.hpp>

#include <algorithm>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace fanout {

namespace po = boost::program_options;
using detail::add_upstream;
using detail::apply_config_keys;
using detail::read_config;
using detail::set_access_log_sample;
using detail::settings;
using detail::switches;

namespace {

// Where a setting's value came from, so that a message names it as the user wrote it.
enum class origin { fallback, file, flag };

struct given_setting {
    char const* flag;
    char const* key;
    origin from;
    std::int64_t value;
};

// The one at fault as "--timeout-ms" or "--config F: timeout_ms"; the other side as e.g.
// "max_timeout_ms (10000, the default)", a default named the way the one at fault was given.
std::string mismatch(
    given_setting const& at_fault,
    std::string_view relation,
    given_setting const& other,
    std::string const& path
) {
    auto name = [&](given_setting const& s) {
        bool as_key = s.from == origin::file || (s.from == origin::fallback && at_fault.from == origin::file);
        return as_key ? std::string(s.key) : std::string("--") + s.flag;
    };
    auto text = (at_fault.from == origin::file ? "--config " + path + ": " : std::string()) + name(at_fault) +
                ": " + std::to_string(at_fault.value) + " " + std::string(relation) + " " + name(other) +
                " (" + std::to_string(other.value);
    if (other.from == origin::fallback) text += ", the default";
    if (other.from == origin::file && at_fault.from != origin::file) text += ", from --config " + path;
    return text + ")";
}

// The setting at fault is the one given (timeout when both were).
void check_consistency(
    options const& o,
    po::variables_map const& flags,
    std::set<std::string> const& file_keys,
    std::string const& path
) {
    if (o.timeout <= o.max_timeout) return;
    auto given = [&](char const* flag, char const* key, milliseconds value) {
        auto from = flags.count(flag) ? origin::flag : file_keys.count(key) ? origin::file : origin::fallback;
        return given_setting{flag, key, from, value.count()};
    };
    auto timeout = given("timeout-ms", "timeout_ms", o.timeout);
    auto cap = given("max-timeout-ms", "max_timeout_ms", o.max_timeout);
    if (timeout.from != origin::fallback || cap.from == origin::fallback)
        throw std::invalid_argument(mismatch(timeout, "must not exceed", cap, path));
    throw std::invalid_argument(mismatch(cap, "must not be below", timeout, path));
}

// Program_options repeats the argument at fault in its message (its value, or the unknown flag
// itself): each is cut short. Its substitutions are protected; a derived class may name them.
void shorten_arguments(po::error_with_option_name& e) {
    struct access : po::error_with_option_name {
        static auto substitutions() { return &access::m_substitutions; }
    };
    for (auto& [name, value] : e.*access::substitutions()) value = wire::shortened(value);
}

}  // namespace

command_line parse_command_line(int argc, char const* const* argv) {
    po::options_description desc{"fanout [options]"};
    auto add = desc.add_options();
    add("config", po::value<std::string>(),
        "FILE.json with the same settings (flags win over it); read again on SIGHUP, a reload");
    add("upstream", po::value<std::vector<std::string>>()->composing(),
        "NAME=URL of a service to aggregate, repeatable, in order; without any: the embedded "
        "simulated services users, orders, inventory on loopback");
    // Numbers are read as signed 64-bit: program_options would wrap "-1" into a huge unsigned.
    for (auto const& s : settings()) {
        if (s.is_text)
            add(s.flag, po::value<std::string>(), s.help);
        else
            add(s.flag, po::value<std::int64_t>(), s.help);
    }
    add("check",
        "check the configuration as a start would, without binding or starting anything; print it as "
        "JSON, every default filled in, and warnings about settings that defeat their purpose (on "
        "stderr); exit 0, or as a start would on an error");
    for (auto const& s : switches) add(s.flag, po::bool_switch(), s.help);
    add("access-log-sample", po::value<double>(),
        "F, above 0 and at most 1: the fraction of access log lines written, drawn at random; 5xx answers "
        "are always written (default 1)");
    add("help", "show this help");
    add("version", "show the version");

    po::variables_map vm;
    try {
        po::store(po::command_line_parser(argc, argv).options(desc).run(), vm);
        po::notify(vm);
    } catch (po::error_with_option_name& e) {
        shorten_arguments(e);
        throw;
    }

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
    o.threads = std::max(1u, std::thread::hardware_concurrency());
    std::set<std::string> file_keys;
    std::string path;
    if (vm.count("config")) {
        path = vm["config"].as<std::string>();
        cl.config = path;
        auto const text = read_config(path);
        try {
            file_keys = apply_config_keys(o, text);
        } catch (std::invalid_argument const& e) {
            throw std::invalid_argument("--config " + wire::shortened(path) + ": " + e.what());
        }
    }
    for (auto const& s : settings()) {
        if (!vm.count(s.flag)) continue;
        auto where = std::string("--") + s.flag;
        if (s.is_text)
            s.set_text(o, where, vm[s.flag].as<std::string>());
        else
            s.set_number(o, where, vm[s.flag].as<std::int64_t>());
    }
    for (auto const& s : switches)
        if (vm[s.flag].as<bool>()) o.*s.member = true;
    if (vm.count("access-log-sample"))
        set_access_log_sample(o, "--access-log-sample", vm["access-log-sample"].as<double>());
    if (vm.count("upstream")) {
        o.upstreams.clear();  // flags win: they replace the file's list
        std::set<std::string> names;
        for (auto const& spec : vm["upstream"].as<std::vector<std::string>>()) {
            try {
                add_upstream(o, names, fanout::parse_service(spec), "--upstream");
            } catch (std::invalid_argument const& e) {
                std::string what = e.what();
                throw std::invalid_argument(what.rfind("--upstream", 0) == 0 ? what : "--upstream: " + what);
            }
        }
    }
    check_consistency(o, vm, file_keys, path);
    if (!o.admin_listen_host.empty() && o.admin_listen_port != 0 && o.admin_listen_port == o.listen_port &&
        o.admin_listen_host == o.listen_host)
        throw std::invalid_argument(
            (vm.count("admin-listen") ? std::string("--admin-listen")
                                      : "--config " + wire::shortened(path) + ": admin_listen") +
            ": the address of --listen; the admin listener needs a port of its own"
        );
    // The demo services stand in only when nothing was configured: a configuration that lists no
    // service would otherwise answer 200 with made-up data.
    if (vm.count("config") && o.upstreams.empty())
        throw std::invalid_argument(
            "--config " + wire::shortened(path) +
            ": no upstreams: list the services under \"upstreams\" (the demo services run only without "
            "--config and --upstream)"
        );
    // The routes are checked now, against the upstreams and limits as the flags left them, so that
    // a mistake is a bad configuration (exit 2) rather than a failure to serve.
    try {
        if (!o.routes.empty()) (void)route_table{o};
    } catch (std::invalid_argument const& e) {
        throw std::invalid_argument(
            (vm.count("config") ? "--config " + wire::shortened(path) + ": " : std::string()) + e.what()
        );
    }
    if (vm.count("check")) cl.what = command_line::action::check;
    return cl;
}

}  // namespace fanout
