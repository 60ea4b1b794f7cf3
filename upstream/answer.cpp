#include "upstream/answer.hpp"

#include "upstream/json_validate.hpp"
#include "wire/read_message.hpp"

#include <boost/asio/ssl/error.hpp>
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

net::awaitable<error_code> read_answer(connection& conn, client_options const& limits, bool& answered) {
    auto& parser = conn.parser;
    error_code ec;
    try {
        for (int interim = 0;; ++interim) {
            expect_answer(conn, limits.max_head, limits.max_body);
            if (conn.tls) {
                ec = co_await wire::read_message(*conn.tls, conn.buffer, *parser, limits.max_head);
                // A close without close_notify, as eof is for plain HTTP: before any byte of
                // the answer, a closed idle connection; after, an answer cut short (a
                // close-delimited body too: its end cannot be told from an attack's).
                if (ec == net::ssl::error::stream_truncated)
                    ec = parser->got_some() || conn.buffer.size() != 0 ? http::error::partial_message
                                                                       : http::error::end_of_stream;
            } else {
                ec = co_await wire::read_message(conn.socket, conn.buffer, *parser, limits.max_head);
            }
            answered = answered || !ec || parser->got_some() || conn.buffer.size() != 0;
            if (ec || parser->status() >= 200 || parser->status() == 101 || interim == max_interim) break;
        }
    } catch (boost::system::system_error const& e) {
        if (e.code() != net::error::operation_aborted) throw;
        ec = net::error::operation_aborted;  // cancelled before a read could start
    }
    co_return ec;
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
