#include "wire/listener.hpp"

#include <boost/system/system_error.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <fstream>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <sys/socket.h>
#include <sys/stat.h>
#include <vector>

namespace fanout::wire {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using boost::system::error_code;

namespace {

// SO_REUSEPORT as an Asio SettableSocketOption: Asio has one only in its detail namespace.
class reuse_port_option {
  public:
    explicit reuse_port_option(bool on) : value_(on ? 1 : 0) {}
    template <class Protocol>
    int level(Protocol const&) const noexcept {
        return SOL_SOCKET;
    }
    template <class Protocol>
    int name(Protocol const&) const noexcept {
        return SO_REUSEPORT;
    }
    template <class Protocol>
    void const* data(Protocol const&) const noexcept {
        return &value_;
    }
    template <class Protocol>
    std::size_t size(Protocol const&) const noexcept {
        return sizeof(value_);
    }

  private:
    int value_;
};

std::string to_string(tcp::endpoint const& ep) {
    auto host = ep.address().to_string();
    return (ep.address().is_v6() ? "[" + host + "]" : host) + ":" + std::to_string(ep.port());
}

// what() is the message alone: Boost's system_error appends the category and the code's value,
// and Asio's throwing overloads the source location of the failed call.
class listen_error : public boost::system::system_error {
  public:
    listen_error(tcp::endpoint const& ep, error_code ec)
        : system_error(ec), what_("cannot listen on " + to_string(ep) + ": " + ec.message()) {}
    char const* what() const noexcept override { return what_.c_str(); }

  private:
    std::string what_;
};

std::vector<std::string_view> split_fields(std::string_view line) {
    std::vector<std::string_view> fields;
    while (!line.empty()) {
        auto start = line.find_first_not_of(' ');
        if (start == std::string_view::npos) break;
        line.remove_prefix(start);
        auto end = std::min(line.find(' '), line.size());
        fields.push_back(line.substr(0, end));
        line.remove_prefix(end);
    }
    return fields;
}

template <class T>
bool parse_hex(std::string_view text, T& value) {
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 16);
    return ec == std::errc{} && end == text.data() + text.size();
}

// "0100007F:1F90" as /proc/net/tcp prints 127.0.0.1:8080: each 32-bit word of the address in
// network order is printed as the hex of its value in memory, the port as a number.
std::optional<tcp::endpoint> parse_proc_endpoint(std::string_view text) {
    auto colon = text.find(':');
    if (colon == std::string_view::npos) return std::nullopt;
    auto hex = text.substr(0, colon);
    std::uint16_t port = 0;
    if ((hex.size() != 8 && hex.size() != 32) || !parse_hex(text.substr(colon + 1), port))
        return std::nullopt;
    std::array<unsigned char, 16> bytes{};
    for (std::size_t i = 0; i < hex.size() / 8; ++i) {
        std::uint32_t word = 0;
        if (!parse_hex(hex.substr(8 * i, 8), word)) return std::nullopt;
        std::memcpy(bytes.data() + 4 * i, &word, sizeof word);
    }
    if (hex.size() == 8)
        return tcp::endpoint{net::ip::address_v4({bytes[0], bytes[1], bytes[2], bytes[3]}), port};
    return tcp::endpoint{net::ip::address_v6(bytes), port};
}

// Same port and family, and the same address or a wildcard. IPv6 scope ids are not compared:
// /proc/net does not show them.
bool overlaps(tcp::endpoint const& a, tcp::endpoint const& b) {
    auto const& x = a.address();
    auto const& y = b.address();
    if (a.port() != b.port() || x.is_v6() != y.is_v6()) return false;
    if (x.is_unspecified() || y.is_unspecified()) return true;
    return x.is_v6() ? x.to_v6().to_bytes() == y.to_v6().to_bytes() : x == y;
}

struct listeners_seen {
    bool own = false;
    bool foreign = false;
};

// Who listens where `endpoint` would, among the sockets of this network namespace; nullopt when
// /proc/net cannot be read.
std::optional<listeners_seen> who_listens(tcp::endpoint const& endpoint, std::vector<ino_t> const& own) {
    std::ifstream in{endpoint.address().is_v6() ? "/proc/net/tcp6" : "/proc/net/tcp"};
    if (!in) return std::nullopt;
    listeners_seen seen;
    std::string line;
    std::getline(in, line);  // the column titles
    while (std::getline(in, line)) {
        // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
        auto fields = split_fields(line);
        if (fields.size() < 10) continue;
        // The kernel lists the listening sockets first; past them, a busy host has many thousands more.
        if (fields[3] != "0A") break;  // TCP_LISTEN
        auto local = parse_proc_endpoint(fields[1]);
        if (!local || !overlaps(*local, endpoint)) continue;
        ino_t inode = 0;  // in decimal
        auto [end, ec] = std::from_chars(fields[9].data(), fields[9].data() + fields[9].size(), inode);
        if (ec != std::errc{} || end != fields[9].data() + fields[9].size()) continue;
        (std::find(own.begin(), own.end(), inode) != own.end() ? seen.own : seen.foreign) = true;
    }
    return seen;
}

std::vector<ino_t> socket_inodes(std::span<int const> fds) {
    std::vector<ino_t> inodes;
    for (int fd : fds) {
        struct stat st {};
        if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode)) inodes.push_back(st.st_ino);
    }
    return inodes;
}

// The listeners this process opened with reuse_port and has not closed: "ours". Kept here rather
// than found by scanning the process's descriptors, which would race with other threads closing
// theirs.
std::mutex own_mutex;
std::vector<ino_t> own_listeners;

std::vector<ino_t> own_listener_inodes() {
    std::lock_guard lock{own_mutex};
    return own_listeners;
}

// With SO_REUSEPORT, a bind joins the listeners of another process of the same user; without it,
// it fails wherever anyone listens. Then the listeners there must be this process's own (its event
// loops opened before).
void refuse_foreign_listeners(net::any_io_executor ex, tcp::endpoint const& endpoint) {
    tcp::acceptor probe{ex};
    error_code ec;
    probe.open(endpoint.protocol(), ec);
    if (!ec) probe.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) probe.bind(endpoint, ec);
    if (ec != net::error::address_in_use) return;  // free, or a failure the real bind will report
    auto seen = who_listens(endpoint, own_listener_inodes());
    if (seen && (seen->foreign || !seen->own)) throw listen_error(endpoint, ec);
}

}  // namespace

tcp::acceptor open_listener(net::any_io_executor ex, tcp::endpoint const& endpoint, bool reuse_port) {
    if (reuse_port && endpoint.port() != 0) refuse_foreign_listeners(ex, endpoint);
    tcp::acceptor acceptor{ex};
    error_code ec;
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec && reuse_port) acceptor.set_option(reuse_port_option(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
    if (ec) throw listen_error(endpoint, ec);
    if (reuse_port) {
        auto bound = acceptor.local_endpoint(ec);
        if (ec) throw listen_error(endpoint, ec);
        int const fd = acceptor.native_handle();
        auto const inode = socket_inodes(std::span{&fd, 1});
        {
            std::lock_guard lock{own_mutex};
            own_listeners.insert(own_listeners.end(), inode.begin(), inode.end());
        }
        auto seen = who_listens(bound, own_listener_inodes());
        if (seen && seen->foreign) {
            release_listener(acceptor);
            throw listen_error(bound, net::error::address_in_use);
        }
    }
    return acceptor;
}

void check_own_listeners(tcp::endpoint const& endpoint, std::span<int const> own) {
    auto seen = who_listens(endpoint, socket_inodes(own));
    if (seen && seen->foreign) throw listen_error(endpoint, net::error::address_in_use);
}

void release_listener(tcp::acceptor& acceptor) {
    if (!acceptor.is_open()) return;
    int const fd = acceptor.native_handle();
    auto const inode = socket_inodes(std::span{&fd, 1});
    std::lock_guard lock{own_mutex};
    for (auto i : inode) std::erase(own_listeners, i);
}

}  // namespace fanout::wire
