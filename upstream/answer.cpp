#include "upstream/answer.hpp"

#include "upstream/json_validate.hpp"
#include "wire/read_message.hpp"
#include "wire/use_tuple.hpp"

#include <boost/asio/ssl/error.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/beast/http/error.hpp>

#include <string>

namespace fanout {

namespace net = boost::asio;
namespace http = boost::beast::http;
using boost::system::error_code;

fetch_result interim_failure(unsigned status) {
    return make_failure(
        error_kind::protocol, status == 101
                                  ? "upstream switched protocols (101)"
                                  : "more than " + std::to_string(max_interim) + " interim (1xx) answers"
    );
}

void take_answer(response_parser& parser, fetch_result& out) {
    auto const status = parser.status();
    if (status > 299) {
        out = make_failure(
            error_kind::status, "upstream answered " + std::to_string(status) + " " + parser.reason(), status
        );
    } else if (!is_valid_json(parser.body())) {
        out = make_failure(error_kind::invalid_json, "body is not JSON");
    } else {
        out.body = std::move(parser.body());
        out.error.reset();
    }
}

namespace {

// read_answer on one kind of stream. It runs wire::read_message's loop itself: one coroutine frame
// per fetch less.
template <class Stream>
net::awaitable<error_code> read_answer_on(
    Stream& stream, connection& conn, client_options const& limits, bool& answered
) {
    auto& parser = conn.parser;
    error_code ec;
    try {
        for (int interim = 0;; ++interim) {
            expect_answer(conn, limits.max_head, limits.max_body);
            for (;;) {
                ec = wire::parse_buffered(*parser, conn.buffer, limits.max_head);
                if (!ec || ec != http::error::need_more) break;
                auto [rec, n] =
                    co_await stream.async_read_some(conn.buffer.prepare(wire::read_size), wire::use_tuple);
                if (auto end = wire::took(*parser, conn.buffer, rec, n)) {
                    ec = *end;
                    break;
                }
                auto const state = co_await net::this_coro::cancellation_state;
                if (state.cancelled() != net::cancellation_type::none) {
                    ec = net::error::operation_aborted;
                    break;
                }
            }
            // A close without close_notify, as eof is for plain HTTP: before any byte of the
            // answer, a closed idle connection; after, an answer cut short (a close-delimited body
            // too: its end cannot be told from an attack's).
            if (ec && ec == net::ssl::error::stream_truncated)
                ec = parser->got_some() || conn.buffer.size() != 0 ? http::error::partial_message
                                                                   : http::error::end_of_stream;
            answered = answered || !ec || parser->got_some() || conn.buffer.size() != 0;
            if (ec || parser->status() >= 200 || parser->status() == 101 || interim == max_interim) break;
        }
    } catch (boost::system::system_error const& e) {
        if (e.code() != net::error::operation_aborted) throw;
        ec = net::error::operation_aborted;  // cancelled before a read could start
    }
    co_return ec;
}

}  // namespace

net::awaitable<error_code> read_answer(connection& conn, client_options const& limits, bool& answered) {
    if (conn.tls) return read_answer_on(*conn.tls, conn, limits, answered);
    return read_answer_on(conn.socket, conn, limits, answered);
}

net::awaitable<error_code> read_final(connection& conn, std::size_t max_head, std::uint64_t max_body) {
    for (int interim = 0;; ++interim) {
        auto ec = co_await wire::read_message(conn.socket, conn.buffer, *conn.parser, max_head);
        if (ec || conn.parser->status() >= 200) co_return ec;
        if (conn.parser->status() == 101 || interim == max_interim) co_return http::error::bad_status;
        expect_answer(conn, max_head, max_body);
    }
}

}  // namespace fanout
