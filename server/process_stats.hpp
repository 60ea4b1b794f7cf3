#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace fanout {

// What the Prometheus client libraries' process collector reports, read from /proc/self.
struct process_stats {
    double cpu_seconds = 0;         // user + system
    double start_time_seconds = 0;  // since the Unix epoch
    std::uint64_t resident_bytes = 0;
    std::uint64_t virtual_bytes = 0;
    std::uint64_t open_fds = 0;
    std::uint64_t max_fds = 0;  // the soft limit
};

// The fields of /proc/PID/stat that process_stats takes (times and start time in clock ticks, the
// resident set in pages), or nothing when `stat` is not such a line. `boot_time`: btime of /proc/stat.
std::optional<process_stats> parse_proc_stat(
    std::string_view stat, double ticks_per_second, std::uint64_t page_size, double boot_time
);

// This process's, or nothing when /proc cannot be read (not Linux, or not mounted).
std::optional<process_stats> read_process_stats();

}  // namespace fanout
