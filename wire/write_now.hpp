#pragma once

#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/buffers_suffix.hpp>
#include <boost/system/error_code.hpp>

#include <cstddef>

namespace fanout::wire {

// A message is first sent with a plain non-blocking send: most (an upstream request, an answer)
// fit in the socket's buffer, and an asynchronous write costs an operation, a trip through the
// scheduler and a resumption even when the send completes at once. Only what the socket did not
// take is left for an asynchronous write (`rest`).
//
// Sends what the socket takes of `buffers` now; returns the bytes sent. `ec`: a failure (a full
// socket buffer is not one). The socket must be non-blocking (`non_blocking(true)`): otherwise
// Asio waits for room, and the loop with it.
template <class Buffers>
std::size_t write_now(
    boost::asio::ip::tcp::socket& sock, Buffers const& buffers, boost::system::error_code& ec
) {
    auto const n = sock.write_some(buffers, ec);
    if (ec && (ec == boost::asio::error::would_block || ec == boost::asio::error::try_again)) {
        ec = {};
        return 0;
    }
    return n;
}

// What write_now left of `buffers` after `sent` bytes.
template <class Buffers>
boost::beast::buffers_suffix<Buffers> rest(Buffers const& buffers, std::size_t sent) {
    boost::beast::buffers_suffix<Buffers> left{buffers};
    left.consume(sent);
    return left;
}

}  // namespace fanout::wire
