#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace fanout::upstream {

// One upstream service, from configuration only (never from a request).
struct service {
    std::string name;
    std::string host;  // connect to this (an IP literal or a name to resolve)
    std::uint16_t port = 80;
    std::string target;       // origin-form request target: path and query
    std::string host_header;  // value of the Host header
    // Bounds this service's fetches in the deadline-bound patterns (the smaller of it and the deadline).
    std::optional<std::chrono::milliseconds> timeout;

    std::string url() const;
};

// Parses "http://host[:port][/path][?query]"; the name may use [A-Za-z0-9_.-] only. Throws
// std::invalid_argument saying what is wrong.
service make_service(std::string name, std::string_view url);

// Parses "NAME=URL", as given to --upstream. Throws std::invalid_argument.
service parse_service(std::string_view spec);

}  // namespace fanout::upstream
