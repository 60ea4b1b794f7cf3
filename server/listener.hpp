#pragma once

#include "wire/listener.hpp"

#include <boost/asio/ip/tcp.hpp>

#include <cstdint>
#include <optional>
#include <string_view>

namespace fanout {

// Opening the socket is the wire layer's (the simulated upstreams listen the same way); the
// server's code names it as its own.
using wire::check_own_listeners;
using wire::open_listener;
using wire::release_listener;

// The address of a --listen host: an IP address (IPv6 without its brackets), or "localhost" for
// 127.0.0.1. nullopt for anything else: names are not resolved.
std::optional<boost::asio::ip::address> parse_listen_host(std::string_view host);

// The endpoint of --listen HOST:PORT. Throws std::invalid_argument naming it when the host is not
// one parse_listen_host() accepts.
boost::asio::ip::tcp::endpoint listen_endpoint(std::string_view host, std::uint16_t port);

}  // namespace fanout
