// fanout's JSON validator (Boost.JSON's parser without a DOM) must agree with json::parse on every input.
#include "upstream/json_validate.hpp"

#include <boost/json/parse.hpp>

#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    std::string_view text{reinterpret_cast<char const*>(data), size};
    boost::system::error_code ec;
    boost::json::parse(text, ec);
    if (fanout::upstream::is_valid_json(text) != !ec) __builtin_trap();
    return 0;
}
