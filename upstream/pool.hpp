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

// The idle connections of each service of one client, at most `max_idle_per_service` each, the most
// recently used taken first. Not thread-safe: it belongs to the client's executor.
class connection_pool {
  public:
    connection_pool(std::size_t services, std::size_t max_idle_per_service)
        : idle_(services), max_idle_(max_idle_per_service) {}

    // The service's most recently pooled connection, out of the pool; null if it has none.
    std::unique_ptr<connection> take(std::size_t index);
    // Into the service's pool, unless it is full or the socket cannot be made non-blocking (for
    // quiet_since_pooled); false: `conn` is left to the caller.
    bool put(std::size_t index, std::unique_ptr<connection>& conn);
    void clear() noexcept;
    std::size_t idle(std::size_t index) const noexcept { return idle_[index].size(); }

  private:
    std::vector<std::vector<std::unique_ptr<connection>>> idle_;
    std::size_t max_idle_;
};

}  // namespace fanout
