#pragma once

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>

#include <cstddef>
#include <optional>

namespace fanout::wire {

// Beast's http::async_read is not used, for three reasons: its buffer grows without bound while a
// chunk-size line or the trailer section is incomplete; its loop does not look at cancellation
// between socket reads, so against a peer that sends without pause a cancel is lost; and it would
// hand the parser buffers that trip an assertion (see guarded_parser).

// Parses what `buffer` holds into `parser`, consuming what it used. Returns http::error::need_more
// when the message needs more bytes. The head, each chunk-size line and the last chunk with the
// trailer section may each be `max_head` bytes, whether they arrive in one read or many (see
// guarded_parser::put_within): over it, header_limit for the head, else buffer_overflow. So the
// bytes left waiting in `buffer` stay below `max_head` + 2. `head_only`: done once the head is (the
// body is left for a later call).
template <class Parser>
boost::beast::error_code parse_buffered(
    Parser& parser, boost::beast::flat_buffer& buffer, std::size_t max_head, bool head_only = false
) {
    namespace http = boost::beast::http;
    if constexpr (Parser::is_request::value) {
        // RFC 9112 §2.2: empty lines before a request line are ignored.
        while (!parser.got_some() && buffer.size() > 0) {
            auto const* p = static_cast<char const*>(buffer.data().data());
            if (p[0] == '\n')
                buffer.consume(1);
            else if (p[0] == '\r' && buffer.size() > 1 && p[1] == '\n')
                buffer.consume(2);
            else
                break;
        }
    }
    while (buffer.size() >= parser.min_put()) {
        if (head_only && parser.is_header_done()) return {};
        boost::beast::error_code ec;
        auto const used = parser.put_within(buffer.data(), max_head, ec);
        buffer.consume(used);
        if (ec && ec != http::error::need_more) return ec;
        if (parser.is_done() || (head_only && parser.is_header_done())) return {};
        if (used == 0) break;
    }
    return http::error::need_more;
}

// Bytes asked of each read: larger than most messages, so that one read usually takes a whole one.
inline constexpr std::size_t read_size = 64 * 1024;

// After a read of `n` bytes that completed with `rec`: the bytes are committed to `buffer`; when
// the read ended the message (the peer closed: end_of_stream before a byte of it, else what the
// parser makes of the close) or failed, what read_message returns.
template <class Parser>
std::optional<boost::beast::error_code> took(
    Parser& parser, boost::beast::flat_buffer& buffer, boost::beast::error_code rec, std::size_t n
) {
    buffer.commit(n);
    if (rec && rec == boost::asio::error::eof) {  // a test of the value first: == compares categories
        if (!parser.got_some()) return boost::beast::http::error::end_of_stream;
        boost::beast::error_code eof_ec;
        parser.put_eof(eof_ec);  // completes a close-delimited body, or partial_message
        return eof_ec;
    }
    if (rec) return rec;
    return std::nullopt;
}

// Reads one whole message from `stream` into `parser` through `buffer` (which may hold bytes
// already, and keeps those that follow the message). Errors as values: end_of_stream when the
// peer closed before a byte of the message, operation_aborted when the calling coroutine was
// cancelled, even if every read completed at once. `head_only`: returns once the head is read (the
// parser must not be eager, Beast's default), so that a caller may act on it before the body.
template <class Stream, class Parser>
boost::asio::awaitable<boost::beast::error_code> read_message(
    Stream& stream,
    boost::beast::flat_buffer& buffer,
    Parser& parser,
    std::size_t max_head,
    bool head_only = false
) {
    namespace net = boost::asio;
    namespace http = boost::beast::http;
    for (;;) {
        auto ec = parse_buffered(parser, buffer, max_head, head_only);
        if (!ec || ec != http::error::need_more) co_return ec;
        auto [rec, n] =
            co_await stream.async_read_some(buffer.prepare(read_size), net::as_tuple(net::use_awaitable));
        if (auto end = took(parser, buffer, rec, n)) co_return *end;
        auto state = co_await net::this_coro::cancellation_state;
        if (state.cancelled() != net::cancellation_type::none) co_return net::error::operation_aborted;
    }
}

}  // namespace fanout::wire
