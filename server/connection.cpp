#include "server/connection.hpp"

#include "wire/use_tuple.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/http/error.hpp>

#include <array>
#include <string>

namespace fanout {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using namespace net::experimental::awaitable_operators;
using tcp = net::ip::tcp;
using boost::system::error_code;
using clock = std::chrono::steady_clock;

namespace {

using wire::use_tuple;

net::awaitable<void> discard(tcp::socket& sock, phase_deadline& limit, clock::time_point end) {
    thread_local std::array<char, 64 * 1024> sink;  // never read: shared by every connection of the thread
    std::size_t total = 0;
    for (;;) {
        auto [ec, n] = co_await sock.async_read_some(net::buffer(sink), use_tuple);
        total += n;
        if (ec || total >= linger_bytes) co_return;
        auto cs = co_await net::this_coro::cancellation_state;
        if (cs.cancelled() != net::cancellation_type::none) co_return;
        limit.set(std::min(end, clock::now() + linger_gap));
    }
}

}  // namespace

bool is_disconnect(error_code ec) {
    return ec == http::error::end_of_stream || ec == net::error::eof || ec == net::error::connection_reset ||
           ec == net::error::operation_aborted || ec == net::error::broken_pipe;
}

response read_failure_response(
    error_code ec, request_parser const& parser, beast::flat_buffer const& buffer
) {
    if (parser.refused() == request_parser::refusal::bad_host)
        return error_response(400, "HTTP/1.1 needs exactly one valid Host header");
    if (parser.refused() == request_parser::refusal::unknown_encoding)
        return error_response(501, "transfer coding not implemented; only chunked is");
    if (ec == http::error::bad_version) {
        auto const* data = static_cast<char const*>(buffer.data().data());
        if (unsupported_version({data, buffer.size()}) != 0)
            return error_response(505, "HTTP version not supported");
    }
    if (ec == http::error::header_limit) return error_response(431, "request head too large");
    if (ec == http::error::body_limit) return error_response(413, "request body too large");
    if (ec == http::error::buffer_overflow)
        return error_response(400, "chunk-size line or trailers too large");
    return error_response(400, "malformed HTTP request");
}

bool write_rejection(tcp::socket& sock) {
    static std::string const answer = [] {
        std::string body = R"({"error":"too many connections"})";
        return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: " +
               std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body;
    }();
    error_code ec;
    sock.non_blocking(true, ec);
    sock.write_some(net::buffer(answer), ec);
    return !ec;
}

void close_after_answer(tcp::socket& sock) {
    static thread_local std::array<char, 16 * 1024> sink;  // never read
    error_code ec;
    sock.non_blocking(true, ec);
    for (int i = 0; i < 4 && !ec; ++i) sock.read_some(net::buffer(sink), ec);
    sock.shutdown(tcp::socket::shutdown_send, ec);
    sock.close(ec);
}

net::awaitable<void> phase_deadline::watch() {
    timer_.expires_at(at_);
    for (;;) {
        auto [ec] = co_await timer_.async_wait(use_tuple);
        if (ec) {
            auto cs = co_await net::this_coro::cancellation_state;
            if (cs.cancelled() != net::cancellation_type::none) co_return;  // the session ended
            continue;  // moved sooner: the timer was re-armed
        }
        if (clock::now() >= at_) {
            expired_ = true;
            error_code ignored;
            sock_.close(ignored);
            co_return;
        }
        timer_.expires_at(at_);
    }
}

net::awaitable<void> linger(tcp::socket& sock) {
    error_code ec;
    sock.shutdown(tcp::socket::shutdown_send, ec);
    if (ec) co_return;
    phase_deadline limit{sock};
    auto const end = clock::now() + linger_time;
    limit.set(std::min(end, clock::now() + linger_gap));
    co_await (discard(sock, limit, end) || limit.watch());
}

}  // namespace fanout
