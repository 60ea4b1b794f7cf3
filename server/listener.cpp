#include "server/listener.hpp"

#include <stdexcept>
#include <string>

namespace fanout {

namespace net = boost::asio;

std::optional<net::ip::address> parse_listen_host(std::string_view host) {
    if (host == "localhost") return net::ip::address_v4::loopback();
    boost::system::error_code ec;
    auto address = net::ip::make_address(host, ec);
    if (ec) return std::nullopt;
    return address;
}

net::ip::tcp::endpoint listen_endpoint(std::string_view host, std::uint16_t port) {
    auto address = parse_listen_host(host);
    if (!address) {
        throw std::invalid_argument(
            "cannot listen on " + std::string(host) + ":" + std::to_string(port) +
            ": not an IP address or localhost"
        );
    }
    return {*address, port};
}

}  // namespace fanout
