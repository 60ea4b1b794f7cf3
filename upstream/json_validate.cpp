#include "upstream/json_validate.hpp"

#include <boost/json/basic_parser_impl.hpp>

namespace fanout {

namespace {

// Boost.JSON's parser with a handler that keeps nothing: validation without a DOM. It replaced a
// hand-written single-pass validator that saved no instructions per request (bench/results/
// json-validator.md) and had to copy Boost.JSON's limits to agree with it.
struct null_handler {
    using error_code = boost::json::error_code;
    using string_view = boost::json::string_view;
    static constexpr std::size_t max_array_size = -1;
    static constexpr std::size_t max_object_size = -1;
    static constexpr std::size_t max_string_size = -1;
    static constexpr std::size_t max_key_size = -1;
    bool on_document_begin(error_code&) { return true; }
    bool on_document_end(error_code&) { return true; }
    bool on_array_begin(error_code&) { return true; }
    bool on_array_end(std::size_t, error_code&) { return true; }
    bool on_object_begin(error_code&) { return true; }
    bool on_object_end(std::size_t, error_code&) { return true; }
    bool on_string_part(string_view, std::size_t, error_code&) { return true; }
    bool on_string(string_view, std::size_t, error_code&) { return true; }
    bool on_key_part(string_view, std::size_t, error_code&) { return true; }
    bool on_key(string_view, std::size_t, error_code&) { return true; }
    bool on_number_part(string_view, error_code&) { return true; }
    bool on_int64(std::int64_t, string_view, error_code&) { return true; }
    bool on_uint64(std::uint64_t, string_view, error_code&) { return true; }
    bool on_double(double, string_view, error_code&) { return true; }
    bool on_bool(bool, error_code&) { return true; }
    bool on_null(error_code&) { return true; }
    bool on_comment_part(string_view, error_code&) { return true; }
    bool on_comment(string_view, error_code&) { return true; }
};

}  // namespace

bool is_valid_json(std::string_view text) noexcept {
    boost::json::basic_parser<null_handler> parser{boost::json::parse_options{}};
    boost::json::error_code ec;
    auto const used = parser.write_some(false, text.data(), text.size(), ec);
    return !ec && used == text.size();
}

}  // namespace fanout
