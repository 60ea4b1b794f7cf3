#include "upstream/request.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>

namespace fanout {

namespace {

constexpr std::string_view crlf = "\r\n";

}  // namespace

std::string request_head(service const& svc, std::string_view target) {
    return "GET " + std::string(target) + " HTTP/1.1\r\nHost: " + svc.host_header +
           "\r\nUser-Agent: fanout/" FANOUT_VERSION "\r\nAccept: application/json\r\n";
}

void fetch_headers::write(
    std::string& out,
    std::string_view head,
    std::string_view deadline_header,
    std::chrono::steady_clock::time_point now
) const {
    constexpr std::string_view traceparent_name = "traceparent: ", tracestate_name = "tracestate: ";
    bool const traced = !trace.empty();
    bool const forwards_state = traced && !trace.tracestate.empty();
    bool const timed = deadline && !deadline_header.empty();
    std::array<char, 55> parent{};
    if (traced) parent = child_traceparent(trace);
    char time_left[24];
    std::size_t time_left_size = 0;
    if (timed) {
        auto const left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - now);
        time_left[0] = ':';
        time_left[1] = ' ';
        auto end = std::to_chars(time_left + 2, time_left + 22, std::max<std::int64_t>(left.count(), 1)).ptr;
        time_left_size = static_cast<std::size_t>(end - time_left);
    }
    // Sized once and copied into: this runs for every upstream request.
    out.resize(
        head.size() + (traced ? traceparent_name.size() + parent.size() + crlf.size() : 0) +
        (forwards_state ? tracestate_name.size() + trace.tracestate.size() + crlf.size() : 0) +
        (timed ? deadline_header.size() + time_left_size + crlf.size() : 0) + crlf.size()
    );
    auto* p = out.data();
    auto put = [&p](std::string_view part) { p = std::copy(part.begin(), part.end(), p); };
    put(head);
    if (traced) {
        put(traceparent_name);
        put({parent.data(), parent.size()});
        put(crlf);
    }
    if (forwards_state) {
        put(tracestate_name);
        put(trace.tracestate);
        put(crlf);
    }
    if (timed) {
        put(deadline_header);
        put({time_left, time_left_size});
        put(crlf);
    }
    put(crlf);
}

}  // namespace fanout
