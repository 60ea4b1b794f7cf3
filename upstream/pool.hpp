#pragma once

// Keep-alive connections to the services, and the idle ones of each kept for reuse.

#include "upstream/response_parser.hpp"
#include "upstream/tls.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace fanout {

// A keep-alive connection with its read buffer and the bytes of its last request, which keep their
// capacity from one use to the next. On the heap, with the parser, so that a fetch's coroutine frame
// stays small enough for Asio to recycle it.
struct connection {
    explicit connection(boost::asio::any_io_executor const& ex) : socket(ex) {}
    ~connection();
    connection(connection const&) = delete;
    connection& operator=(connection const&) = delete;

    boost::asio::ip::tcp::socket socket;
    // https:// services: TLS over the socket, set up by the handshake. Never shut down with a
    // close_notify exchange: closing a connection must not wait on its peer.
    std::unique_ptr<tls_stream> tls;
    boost::beast::flat_buffer buffer;
    std::string request;
    std::optional<response_parser> parser;  // of the answer being read
};

// A fresh parser for the next answer on `conn`, within the client's limits.
void expect_answer(connection& conn, std::size_t max_head, std::uint64_t max_body);

// A pooled connection is reused only if nothing arrived on it while it was idle: an unsolicited
// answer would be taken for the next request's, stray bytes would fail it, an EOF means closed.
// Pooled sockets are non-blocking, so this is one recv() that finds nothing.
bool quiet_since_pooled(connection& conn);

// The idle connections of one service, at most `max_idle`, the most recently used taken first.
// Not thread-safe: it belongs to the executor of the clients that share it.
class connection_pool {
  public:
    explicit connection_pool(std::size_t max_idle) : max_idle_(max_idle) {}

    // The most recently pooled connection, out of the pool; null if it has none.
    std::unique_ptr<connection> take();
    // Into the pool, unless it is full, closed to new connections (close()), or the socket cannot
    // be made non-blocking (for quiet_since_pooled); false: `conn` is left to the caller.
    bool put(std::unique_ptr<connection>& conn);
    void clear() noexcept;
    // Its idle connections closed, and none pooled from now on: its service is no longer served.
    void close() noexcept;
    // At most this many from now on; those over it are closed.
    void max_idle(std::size_t n);
    std::size_t idle() const noexcept { return idle_.size(); }

  private:
    std::vector<std::unique_ptr<connection>> idle_;
    std::size_t max_idle_;
    bool closed_ = false;
};

}  // namespace fanout
