#pragma once

#include <boost/asio/ip/tcp.hpp>

#include <array>
#include <chrono>
#include <cstdint>
#include <fanout/metrics.hpp>
#include <fanout/options.hpp>
#include <string_view>

namespace spdlog {
class logger;
}

namespace fanout {

// The access log (options::access_log): one "access" line at info per answered request, of a
// sampled fraction of them (options::access_log_sample), 5xx always. One per event loop: not
// thread-safe. Off, it costs a test of on() per request.
class access_log {
  public:
    // The client's address as a line shows it, taken once per connection.
    struct peer {
        std::array<char, 46> text{};  // INET6_ADDRSTRLEN
        std::uint8_t size = 0;
        std::string_view view() const noexcept { return {text.data(), size}; }
    };

    // What a line says of one answered request.
    struct entry {
        peer const& client;
        std::string_view forwarded_for;  // the first X-Forwarded-For address, validated; empty: none
        std::string_view method;
        std::string_view target;  // as received: the line keeps its path, without the query
        endpoint target_endpoint;
        std::string_view route;  // the route's template; empty: none
        unsigned status;
        std::size_t bytes;  // sent, head and body
        std::chrono::steady_clock::duration elapsed;
        std::string_view trace_id;
    };

    explicit access_log(options const& opts);

    bool on() const noexcept { return on_; }
    bool trusts_forwarded_for() const noexcept { return on_ && trust_forwarded_for_; }
    // Empty when off (no system call then).
    peer peer_of(boost::asio::ip::tcp::socket const& sock) const;

    // Writes the line at info, if sampled.
    void write(spdlog::logger& log, entry const& e);
    // Whether a line is written, given a uniform random `draw`: at random rather than every n-th,
    // which traffic of a period that divides n would alias with (one path never logged); and not
    // by the trace id, which a client chooses. An error is always written.
    bool sampled(unsigned status, std::uint64_t draw) const noexcept;

  private:
    std::uint64_t next() noexcept;  // splitmix64

    bool on_;
    bool trust_forwarded_for_;
    std::uint64_t threshold_;  // a draw below it is written; max(): every one
    std::uint64_t state_;
};

}  // namespace fanout
