#pragma once

#include "upstream/service.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace fanout::server {

struct options {
    std::string listen_host = "127.0.0.1";         // loopback unless told otherwise
    std::uint16_t listen_port = 8080;              // 0: any free port
    unsigned threads = 1;                          // event loops (the command line defaults to the cores)
    std::vector<upstream::service> upstreams;      // empty on the command line: the embedded demo services
    std::chrono::milliseconds timeout{1000};       // default deadline
    std::chrono::milliseconds max_timeout{10000};  // cap of ?timeout_ms=
    std::size_t max_upstream_body = 1024 * 1024;
    std::size_t upstream_pool_size = 64;       // idle connections kept per service and event loop
    std::size_t max_request_head = 8 * 1024;   // over it: 431
    std::size_t max_request_body = 64 * 1024;  // over it: 413
};

struct command_line {
    enum class action { run, help, version };
    action what = action::run;
    std::string help;  // the usage text, for action::help
    options opts;
};

// Parses fanout's command line. Throws std::exception with a one-line message naming the flag.
command_line parse_command_line(int argc, char const* const* argv);

}  // namespace fanout::server
