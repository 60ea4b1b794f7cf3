#include "server/access_log.hpp"

#include "server/log.hpp"
#include "server/request_parser.hpp"

#include <algorithm>
#include <arpa/inet.h>
#include <cmath>
#include <limits>
#include <random>
#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

namespace fanout {

namespace {

// A line fits in it unless its path is long: the only allocation is then spdlog's, of the line.
using line_buffer = fmt::basic_memory_buffer<char, 512>;

void append(line_buffer& out, std::string_view text) {
    out.append(text.data(), text.data() + text.size());
}

// A JSON string. What a request sent is printable ASCII as a rule (the parser allows more in a
// path), written as it is; anything else goes through json_quote, which allocates.
void append_string(line_buffer& out, std::string_view text) {
    bool const plain = std::all_of(text.begin(), text.end(), [](char ch) {
        auto const c = static_cast<unsigned char>(ch);
        return c >= 0x20 && c < 0x7f && c != '"' && c != '\\';
    });
    if (!plain) return append(out, json_quote(text));
    out.push_back('"');
    append(out, text);
    out.push_back('"');
}

std::uint64_t threshold_of(double fraction) {
    if (fraction >= 1) return std::numeric_limits<std::uint64_t>::max();
    return static_cast<std::uint64_t>(std::ldexp(fraction, 64));
}

}  // namespace

access_log::access_log(options const& opts)
    : on_(opts.access_log),
      trust_forwarded_for_(opts.trust_forwarded_for),
      threshold_(threshold_of(opts.access_log_sample)),
      state_(opts.access_log && opts.access_log_sample < 1 ? std::random_device{}() : 0) {
}

access_log::peer access_log::peer_of(boost::asio::ip::tcp::socket const& sock) const {
    peer p;
    if (!on_) return p;
    boost::system::error_code ec;
    auto address = sock.remote_endpoint(ec).address();
    if (ec) return p;
    // Listening on [::], IPv4 clients come as ::ffff:a.b.c.d: shown as a.b.c.d.
    if (address.is_v6() && address.to_v6().is_v4_mapped())
        address = boost::asio::ip::make_address_v4(boost::asio::ip::v4_mapped, address.to_v6());
    char const* text = nullptr;
    if (address.is_v4()) {
        auto const bytes = address.to_v4().to_bytes();
        text = inet_ntop(AF_INET, bytes.data(), p.text.data(), p.text.size());
    } else {
        auto const bytes = address.to_v6().to_bytes();
        text = inet_ntop(AF_INET6, bytes.data(), p.text.data(), p.text.size());
    }
    if (text) p.size = static_cast<std::uint8_t>(std::char_traits<char>::length(text));
    return p;
}

std::uint64_t access_log::next() noexcept {
    auto z = (state_ += 0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
    z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
    return z ^ (z >> 31);
}

bool access_log::sampled(unsigned status, std::uint64_t draw) const noexcept {
    return status >= 500 || threshold_ == std::numeric_limits<std::uint64_t>::max() || draw < threshold_;
}

void access_log::write(spdlog::logger& log, entry const& e) {
    if (!on_ || !log.should_log(spdlog::level::info)) return;
    if (threshold_ != std::numeric_limits<std::uint64_t>::max() && !sampled(e.status, next())) return;
    line_buffer line;
    append(line, R"({"event":"access","client":)");
    append_string(line, e.client.view());
    if (!e.forwarded_for.empty()) {
        append(line, R"(,"forwarded_for":)");
        append_string(line, e.forwarded_for);
    }
    append(line, R"(,"method":)");
    append_string(line, e.method);
    append(line, R"(,"path":)");
    append_string(line, path_without_query(e.target));
    append(line, R"(,"route":)");
    append_string(line, e.route);
    fmt::format_to(
        std::back_inserter(line),
        R"(,"endpoint":"{}","status":{},"bytes":{},"elapsed_ms":{:.3f},"trace_id":)",
        to_string(e.target_endpoint), e.status, e.bytes,
        std::chrono::duration<double, std::milli>(e.elapsed).count()
    );
    append_string(line, e.trace_id);
    line.push_back('}');
    log.log(spdlog::level::info, spdlog::string_view_t(line.data(), line.size()));
}

}  // namespace fanout
