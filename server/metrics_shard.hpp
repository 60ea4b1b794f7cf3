#pragma once

// What one event loop writes of fanout's metrics, and how the servers reach it. Internal: an
// application sees a metrics_registry, and reads it through render().

#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstdint>
#include <fanout/error.hpp>
#include <fanout/metrics.hpp>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fanout {

// Written by one thread, read by any: a relaxed load and store need no locked instruction.
template <class T>
class local_value {
  public:
    void add(T n = 1) noexcept {
        value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    T value() const noexcept { return value_.load(std::memory_order_relaxed); }

  private:
    std::atomic<T> value_{0};
};
using local_counter = local_value<std::uint64_t>;
using local_gauge = local_value<std::int64_t>;

// Elements that never move once made, so that one thread may add more while others use those
// already there. The registry adds them (under its lock) before it gives their index out.
template <class T>
class series_list {
  public:
    explicit series_list(std::size_t n = 0) { grow_to(n); }

    T& operator[](std::size_t i) noexcept {
        auto const [c, at] = locate(i);
        return chunks_[c][at];
    }
    T const& operator[](std::size_t i) const noexcept {
        auto const [c, at] = locate(i);
        return chunks_[c][at];
    }
    std::size_t size() const noexcept { return size_.load(std::memory_order_acquire); }
    // At least n elements from now on, the new ones as T{} makes them.
    void grow_to(std::size_t n) {
        for (std::size_t c = 0; c < chunks_.size() && first * ((std::size_t{1} << c) - 1) < n; ++c)
            if (!chunks_[c]) chunks_[c] = std::make_unique<T[]>(first << c);
        if (n > size()) size_.store(n, std::memory_order_release);
    }

  private:
    // Chunk c holds `first << c` elements, from index first * (2^c - 1) on.
    static constexpr std::size_t first = 8;
    static std::pair<std::size_t, std::size_t> locate(std::size_t i) noexcept {
        auto const c = static_cast<std::size_t>(std::bit_width(i / first + 1) - 1);
        return {c, i - first * ((std::size_t{1} << c) - 1)};
    }

    std::array<std::unique_ptr<T[]>, 40> chunks_;
    std::atomic<std::size_t> size_{0};
};

// The trace of one observation, kept beside the bucket it fell in: an OpenMetrics exemplar.
// Written by one thread; any thread reads a consistent copy (a sequence lock over atomics).
class exemplar_slot {
  public:
    struct exemplar {
        std::array<char, 32> trace_id;
        double seconds;  // the value observed
        double at;       // when, in seconds since the Unix epoch
    };

    // `trace_id`: 32 characters (W3C Trace Context); anything else is not kept.
    void set(std::string_view trace_id, double seconds, double at) noexcept;
    // The last one set, or nothing if none was (or writes kept overtaking the read).
    std::optional<exemplar> get() const noexcept;

  private:
    std::atomic<std::uint32_t> sequence_{0};  // odd while a write is under way
    std::array<std::atomic<std::uint64_t>, 4> trace_id_{};
    std::atomic<double> seconds_{0}, at_{0};
};

// A latency histogram with fixed buckets, in seconds: from 50 µs, where answers from a cache or a
// local service fall, to 60 s, where a hung request still lands in a finite bucket.
class histogram {
  public:
    static constexpr std::array<double, 19> bounds{0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                   0.01,    0.025,  0.05,    0.1,    0.25,  0.5,    1.0,
                                                   2.5,     5.0,    10.0,    30.0,   60.0};
    static constexpr std::array<char const*, bounds.size() + 1> bound_labels{
        "5e-05", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05",
        "0.1",   "0.25",   "0.5",     "1",      "2.5",   "5",      "10",    "30",   "60",    "+Inf"};
    // `trace_id`: of the request observed, kept as its bucket's exemplar; empty: none.
    void observe(std::chrono::steady_clock::duration d, std::string_view trace_id = {}) noexcept;

    std::array<local_counter, bounds.size() + 1> buckets;  // the last one is +Inf
    local_counter sum_ns;
    std::array<exemplar_slot, bounds.size() + 1> exemplars;
};

// Every metric one event loop writes; no other thread writes it, any thread may read it.
struct metrics_shard {
    // Status codes fanout answers with; anything else is counted as "other".
    static constexpr std::array<unsigned, 14> codes{200, 400, 404, 405, 408, 413, 431,
                                                    500, 501, 502, 503, 504, 505, 0};

    struct service_metrics {
        // Requests sent (first tries, hedges, retries; client_options::on_request), by outcome.
        std::array<histogram, request_outcome_count> requests;
        // Requests failed, by fanout::error_kind (never circuit_open nor cancelled).
        std::array<local_counter, error_kind_count> failures;
        std::array<local_counter, cancel_reason_count> cancellations;  // requests cancelled, by reason
        local_counter circuit_open;  // requests refused by the open circuit breaker (not sent)
        local_counter opened, reused, retried;
        local_counter hedges_won, hedges_lost;             // hedged requests, by whose answer was used
        local_counter fetch_retries, over_budget;          // service::max_retries; hedges and retries refused
        local_counter settled_kept, settled_closed;        // connections of cancelled fetches: pooled, closed
        local_counter tls_full, tls_resumed;               // TLS handshakes: full, session resumed
        std::atomic<std::uint8_t> breaker{0};              // this loop's fanout::breaker_state
        std::array<local_counter, 3> breaker_transitions;  // by the state entered
    };

    // The answers of one route, or of /healthz, /metrics or no route at all.
    struct request_series {
        std::array<local_counter, codes.size()> answers;  // by status code
        histogram duration;
    };
    // Where requests_of() finds the series of requests routed to no route.
    static constexpr std::size_t healthz_series = 0, metrics_series = 1, other_series = 2, first_route = 3;

    metrics_shard(std::size_t service_count, std::size_t route_count)
        : services(service_count), requests(first_route + route_count) {}

    // `route`: the route's index in the registry's routes(), for a request routed to one.
    // `trace_id`: the request's, an exemplar of its duration; empty: none.
    void count_request(
        endpoint e,
        std::optional<std::size_t> route,
        unsigned status,
        std::chrono::steady_clock::duration took,
        std::string_view trace_id = {}
    ) noexcept;

    // Indexed by the registry's series: every service and route any configuration had since start.
    series_list<service_metrics> services;
    series_list<request_series> requests;  // healthz, metrics, other, then each route
    std::array<local_counter, endpoint_count> client_disconnects;
    local_gauge in_flight;
    local_counter connections_accepted;
    local_counter connections_rejected;
    local_counter connections_timed_out;  // idle or slow request head
    std::atomic<bool> draining{false};    // from the start of a shutdown on
    std::atomic<bool> claimed{false};
    local_gauge background_fetches;      // wg and channel requests whose client left, fetches going on
    local_counter background_cancelled;  // of those, cancelled over --max-background-fetches
};

namespace detail {

// A registry's writers: the servers and aggregators of its event loops.
struct metrics_writer {
    // A shard has one writer: the event loop that claims it, until it releases it. Throws
    // std::out_of_range for an index past shard_count(), std::logic_error if already claimed.
    static metrics_shard& claim(metrics_registry& r, std::size_t i) { return r.claim(i); }
    static void release(metrics_registry& r, std::size_t i) noexcept { r.release(i); }
    static metrics_shard const& shard(metrics_registry const& r, std::size_t i) { return r.shard(i); }
    static std::atomic<std::size_t>& open_connections(metrics_registry& r) noexcept {
        return r.open_connections_;
    }
    // A configuration's series (see metrics_registry's comment), and the services it serves.
    static std::vector<std::size_t> use_services(metrics_registry& r, std::vector<std::string> const& names) {
        return r.use_services(names);
    }
    static std::vector<std::size_t> use_routes(metrics_registry& r, std::vector<route_label> const& routes) {
        return r.use_routes(routes);
    }
    static void serving(metrics_registry& r, std::vector<std::size_t> const& services) {
        r.serving(services);
    }
};

}  // namespace detail
}  // namespace fanout
