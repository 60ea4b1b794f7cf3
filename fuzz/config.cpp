// The configuration parsers: a --config file's JSON and an --upstream NAME=URL. Bad input must be
// an std::invalid_argument naming what is wrong, never a crash or another exception.
#include <fanout/options.hpp>
#include <fanout/service.hpp>
#include <stdexcept>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
    if (size == 0) return 0;
    std::string const text(reinterpret_cast<char const*>(data) + 1, size - 1);
    try {
        if (data[0] % 2 == 0) {
            fanout::options opts;
            fanout::apply_config(opts, text);
        } else {
            auto s = fanout::parse_service(text);
            if (s.name.empty() || s.host.empty() || s.port == 0 || s.target.empty() || s.target[0] != '/')
                __builtin_trap();
        }
    } catch (std::invalid_argument const& e) {
        if (std::string_view(e.what()).empty()) __builtin_trap();
    }
    return 0;
}
