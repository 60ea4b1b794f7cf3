// The upstream side: an answer in arbitrary pieces (interim 1xx answers, chunked, close-delimited,
// stray bytes after it) read as the client reads it. The body must respect its limit and bytes held
// before parsing must stay within --max-upstream-head.
#include "fuzz/common.hpp"
#include "upstream/json_validate.hpp"
#include "upstream/response_parser.hpp"

#include <optional>

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    using namespace fanout;
    namespace http = boost::beast::http;
    constexpr std::size_t max_head = 2048;
    constexpr std::size_t max_body = 4096;
    fuzz::pieces input{data, size};
    boost::beast::flat_buffer buffer;
    std::optional<fanout::response_parser> parser;
    auto fresh = [&] {
        parser.emplace();
        parser->header_limit(max_head);
        parser->body_limit(max_body);
    };
    fresh();
    for (;;) {
        auto ec = wire::parse_buffered(*parser, buffer, max_head);
        fuzz::check_bounded(buffer, max_head, input.piece_size());
        if (ec == http::error::need_more) {
            if (input.empty()) {
                boost::beast::error_code eof;
                if (parser->got_some()) parser->put_eof(eof);  // the upstream closed
                break;
            }
            input.deliver(buffer);
            continue;
        }
        if (ec) break;
        if (parser->status() >= 100 && parser->status() < 200 && parser->status() != 101) {
            fresh();  // an interim answer: the final one follows
            continue;
        }
        if (parser->body().size() > max_body) __builtin_trap();
        (void)fanout::is_valid_json(parser->body());
        break;  // stray bytes after the answer stay in the buffer: the pool discards the connection
    }
    return 0;
}
