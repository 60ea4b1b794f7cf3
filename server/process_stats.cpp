#include "server/process_stats.hpp"

#include <charconv>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <sys/resource.h>
#include <unistd.h>

namespace fanout {

namespace {

std::string read_file(char const* path) {
    std::ifstream in{path, std::ios::binary};
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

bool parse_number(std::string_view s, std::uint64_t& to) {
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), to);
    return ec == std::errc{} && end == s.data() + s.size();
}

}  // namespace

std::optional<process_stats> parse_proc_stat(
    std::string_view stat, double ticks_per_second, std::uint64_t page_size, double boot_time
) {
    // The command name (field 2) is in parentheses and may hold spaces and parentheses itself:
    // the fields are counted from the last ')'.
    auto const close = stat.rfind(')');
    if (close == std::string_view::npos) return std::nullopt;
    stat.remove_prefix(close + 1);
    // Fields from 3 (state) on; utime 14, stime 15, starttime 22, vsize 23, rss 24. Some others
    // may be negative.
    std::string_view fields[22];
    for (auto& field : fields) {
        auto const start = stat.find_first_not_of(' ');
        if (start == std::string_view::npos) return std::nullopt;
        stat.remove_prefix(start);
        field = stat.substr(0, stat.find_first_of(" \n"));
        stat.remove_prefix(field.size());
    }
    std::uint64_t utime = 0, stime = 0, start_ticks = 0, vsize = 0, rss = 0;
    if (!parse_number(fields[14 - 3], utime) || !parse_number(fields[15 - 3], stime) ||
        !parse_number(fields[22 - 3], start_ticks) || !parse_number(fields[23 - 3], vsize) ||
        !parse_number(fields[24 - 3], rss))
        return std::nullopt;
    process_stats p;
    p.cpu_seconds = static_cast<double>(utime + stime) / ticks_per_second;
    p.start_time_seconds = boot_time + static_cast<double>(start_ticks) / ticks_per_second;
    p.virtual_bytes = vsize;
    p.resident_bytes = rss * page_size;
    return p;
}

std::optional<process_stats> read_process_stats() {
    auto const stat = read_file("/proc/self/stat");
    auto const system = read_file("/proc/stat");
    auto const btime = system.find("\nbtime ");
    if (btime == std::string::npos) return std::nullopt;
    std::uint64_t boot = 0;
    auto const digits = system.data() + btime + 7;
    std::from_chars(digits, system.data() + system.size(), boot);
    auto p = parse_proc_stat(
        stat, static_cast<double>(sysconf(_SC_CLK_TCK)), static_cast<std::uint64_t>(sysconf(_SC_PAGESIZE)),
        static_cast<double>(boot)
    );
    if (!p) return std::nullopt;
    std::error_code ec;
    for (std::filesystem::directory_iterator it{"/proc/self/fd", ec}, end; !ec && it != end; it.increment(ec))
        ++p->open_fds;
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0) p->max_fds = limit.rlim_cur;
    return p;
}

}  // namespace fanout
