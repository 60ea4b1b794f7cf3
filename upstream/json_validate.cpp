#include "upstream/json_validate.hpp"

#include <boost/json/basic_parser_impl.hpp>

#include <cstdint>

namespace fanout::upstream {

namespace {

namespace json = boost::json;
using json::error_code;

// A handler that accepts everything: the parser alone decides validity.
struct null_handler {
    static constexpr std::size_t max_object_size = std::size_t(-1);
    static constexpr std::size_t max_array_size = std::size_t(-1);
    static constexpr std::size_t max_key_size = std::size_t(-1);
    static constexpr std::size_t max_string_size = std::size_t(-1);

    bool on_document_begin(error_code&) { return true; }
    bool on_document_end(error_code&) { return true; }
    bool on_object_begin(error_code&) { return true; }
    bool on_object_end(std::size_t, error_code&) { return true; }
    bool on_array_begin(error_code&) { return true; }
    bool on_array_end(std::size_t, error_code&) { return true; }
    bool on_key_part(json::string_view, std::size_t, error_code&) { return true; }
    bool on_key(json::string_view, std::size_t, error_code&) { return true; }
    bool on_string_part(json::string_view, std::size_t, error_code&) { return true; }
    bool on_string(json::string_view, std::size_t, error_code&) { return true; }
    bool on_number_part(json::string_view, error_code&) { return true; }
    bool on_int64(std::int64_t, json::string_view, error_code&) { return true; }
    bool on_uint64(std::uint64_t, json::string_view, error_code&) { return true; }
    bool on_double(double, json::string_view, error_code&) { return true; }
    bool on_bool(bool, error_code&) { return true; }
    bool on_null(error_code&) { return true; }
    bool on_comment_part(json::string_view, error_code&) { return true; }
    bool on_comment(json::string_view, error_code&) { return true; }
};

}  // namespace

struct json_validator::impl {
    // Default options: strict JSON, no comments, depth limit 32 (bounds the parser's stack).
    json::basic_parser<null_handler> parser{json::parse_options{}};
};

json_validator::json_validator() : impl_(std::make_unique<impl>()) {
}

json_validator::~json_validator() = default;

bool json_validator::valid(std::string_view text) noexcept {
    impl_->parser.reset();
    error_code ec;
    auto n = impl_->parser.write_some(false, text.data(), text.size(), ec);
    return !ec && n == text.size();
}

bool is_valid_json(std::string_view text) noexcept {
    return json_validator{}.valid(text);
}

}  // namespace fanout::upstream
