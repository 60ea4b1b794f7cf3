// The request side of a connection: arbitrary bytes, in arbitrary pieces, possibly several pipelined
// requests, through the request parser and the router. Every answer the router builds must be
// valid JSON, and bytes held before parsing must stay within --max-request-head.
#include "fuzz/common.hpp"
#include "server/request_parser.hpp"
#include "server/router.hpp"

#include <boost/json/parse.hpp>

#include <fanout/options.hpp>
#include <optional>

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    using namespace fanout;
    namespace http = boost::beast::http;
    static fanout::options const opts;
    fuzz::pieces input{data, size};
    boost::beast::flat_buffer buffer;
    std::optional<fanout::request_parser> parser;
    auto fresh = [&] {
        parser.emplace();
        parser->header_limit(static_cast<std::uint32_t>(opts.max_request_head));
        parser->body_limit(opts.max_request_body);
    };
    fresh();
    while (!input.empty()) {
        input.deliver(buffer);
        for (;;) {
            auto ec = wire::parse_buffered(*parser, buffer, opts.max_request_head);
            fuzz::check_bounded(buffer, opts.max_request_head, input.piece_size());
            if (ec == http::error::need_more) break;
            if (ec) return 0;  // the server answers 4xx and closes
            auto r = fanout::match(parser->method(), parser->target(), opts);
            if (r.answer) {
                boost::system::error_code jec;
                boost::json::parse(r.answer->body, jec);
                if (jec) __builtin_trap();
            }
            fresh();  // the next pipelined request
        }
    }
    return 0;
}
