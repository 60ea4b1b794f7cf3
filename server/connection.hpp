#pragma once

#include "server/request_parser.hpp"
#include "server/response.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include <chrono>

namespace fanout {

// What every client connection of the server needs, on the main listener and the admin one alike:
// its time limits, the answers to requests that could not be read or were refused, and closing
// without destroying the last answer.

// The peer went away or we are shutting down: nothing to answer.
bool is_disconnect(boost::system::error_code ec);

// Answer to a request that could not be read; the connection is closed after it.
response read_failure_response(
    boost::system::error_code ec, request_parser const& parser, boost::beast::flat_buffer const& buffer
);

// Over a connection limit: a short answer written without waiting (it fits in any socket buffer).
// Returns false if the connection is gone already.
bool write_rejection(boost::asio::ip::tcp::socket& sock);

// Closes a connection whose last answer was just written, without waiting: the bytes already
// received (at most 64 KiB of them) are dropped and the sending side shut down first.
void close_after_answer(boost::asio::ip::tcp::socket& sock);

// The time limit of a connection's current phase (idle, reading a request, writing an answer).
// Moving it later costs nothing: the watchdog finds out when it wakes. Only moving it sooner
// re-arms the timer, which on a busy keep-alive connection happens about once per timeout.
// When it passes, the socket is closed: a cancelled read may be lost against a peer that sends
// without pause (every read completes at once), a closed socket fails the next one.
class phase_deadline {
  public:
    using clock = std::chrono::steady_clock;

    explicit phase_deadline(boost::asio::ip::tcp::socket& sock) : sock_(sock), timer_(sock.get_executor()) {}

    void set(clock::time_point t) {
        at_ = t;
        if (t < timer_.expiry()) timer_.expires_at(t);
    }
    void after(clock::duration d) { set(clock::now() + d); }
    void clear() { at_ = clock::time_point::max(); }
    bool expired() const noexcept { return expired_; }

    // Completes once the deadline has passed.
    boost::asio::awaitable<void> watch();

  private:
    boost::asio::ip::tcp::socket& sock_;
    boost::asio::steady_timer timer_;
    clock::time_point at_ = clock::time_point::max();
    bool expired_ = false;
};

// Lingering close: closing a socket with unread bytes sends a reset, and a reset can destroy an
// answer the peer has not read yet (a client still sending its body after a 413, a request that
// crossed our last answer). So the sending side is shut down first, and what arrives is read and
// discarded until the peer closes, nothing arrives for linger_gap, linger_time passes or
// linger_bytes were discarded. Bounded both ways, against a slow peer and one that never pauses.
inline constexpr auto linger_time = std::chrono::seconds(5);
inline constexpr auto linger_gap = std::chrono::milliseconds(500);
inline constexpr std::size_t linger_bytes = 16 * 1024 * 1024;

boost::asio::awaitable<void> linger(boost::asio::ip::tcp::socket& sock);

}  // namespace fanout
