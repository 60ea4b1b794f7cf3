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
#include <span>
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
    std::uint64_t quiet_in = 0;             // the idle_check round that found it quiet, if any
};

// A fresh parser for the next answer on `conn`, within the client's limits.
void expect_answer(connection& conn, std::size_t max_head, std::uint64_t max_body);

// The idle connections of one service, at most `max_idle`, the most recently used taken first.
// Not thread-safe: it belongs to the executor of the clients that share it.
class connection_pool {
  public:
    explicit connection_pool(std::size_t max_idle) : max_idle_(max_idle) {}

    // The most recently pooled connection, out of the pool; null if it has none.
    std::unique_ptr<connection> take();
    // The one take() would give, left in the pool; null if it has none.
    connection* next() const noexcept { return idle_.empty() ? nullptr : idle_.back().get(); }
    // Into the pool, unless it is full or closed to new connections (close()); false: `conn` is
    // left to the caller.
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

// A pooled connection is reused only if nothing arrived on it while it was idle: an unsolicited
// answer would be taken for the next request's, stray bytes would fail it, an EOF means closed.
// The fetches that a handler starts together take their connections one after the other in the
// same run of the event loop, so one poll() checks the connection being taken and the next one of
// every other pool (the ones they are about to take), instead of a recv(MSG_PEEK) each. Its
// verdict serves only the takes of that run: a handler posted with it ends it, and the next take
// after that polls again. Not thread-safe, as the pools it looks into.
class idle_check {
  public:
    explicit idle_check(boost::asio::any_io_executor ex);

    // Whether `conn`, just taken from a pool, is quiet. `pools`: those whose next connection the
    // same poll() checks (at most max_polled connections in all).
    bool quiet(connection& conn, std::span<connection_pool* const> pools);

    static constexpr std::size_t max_polled = 16;

  private:
    struct round {
        std::uint64_t id = 0;  // unique among all idle checks; 0: none open
        bool closing = false;  // its end is posted
    };
    boost::asio::any_io_executor ex_;
    std::shared_ptr<round> round_ = std::make_shared<round>();  // shared with the posted end
};

}  // namespace fanout
