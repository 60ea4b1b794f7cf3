#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <fanout/error.hpp>
#include <fanout/route.hpp>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fanout {

// What a request was routed to; a label of the request metrics.
enum class endpoint : std::uint8_t { wg, channel, context_timeout, errgroup, healthz, metrics, other };
// Arrays indexed by endpoint have this size: keep `other` the last one.
inline constexpr std::size_t endpoint_count = static_cast<std::size_t>(endpoint::other) + 1;
std::string_view to_string(endpoint e) noexcept;
// A route's label: its pattern's endpoint.
endpoint endpoint_of(pattern p) noexcept;

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

    std::vector<service_metrics> services;
    std::vector<request_series> requests;  // healthz, metrics, other, then each route
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

// The formats render() writes: the Prometheus text format 0.0.4, or OpenMetrics 1.0 (with exemplars).
enum class exposition : std::uint8_t { prometheus_text, openmetrics };

// The format a scraper's Accept header asks for: OpenMetrics when it names
// application/openmetrics-text with a q at least that of text/plain; else (no header too) 0.0.4.
exposition negotiate_exposition(std::string_view accept) noexcept;
// The Content-Type of a page in that format.
std::string_view content_type(exposition format) noexcept;

// A route as the request metrics label it: its pattern and its path template.
struct route_label {
    endpoint pattern;
    std::string path;
    bool operator==(route_label const&) const = default;
};

// The labels of options::routes (empty: of the seed's four endpoints), for a metrics_registry.
std::vector<route_label> route_labels(std::vector<route_config> const& routes);

// The metrics of every event loop of a process, summed when scraped.
class metrics_registry {
  public:
    // `routes`: route_labels() of the options::routes of the servers that will share it; empty:
    // the seed's four endpoints (the routes served when none are configured).
    metrics_registry(
        std::vector<std::string> service_names, std::size_t shards, std::vector<route_label> routes = {}
    );

    // A shard has one writer: the event loop that claims it, until it releases it. Throws
    // std::out_of_range for an index past shard_count(), std::logic_error if already claimed.
    metrics_shard& claim(std::size_t i);
    void release(std::size_t i) noexcept;

    metrics_shard const& shard(std::size_t i) const { return *shards_.at(i); }
    std::size_t shard_count() const noexcept { return shards_.size(); }
    std::vector<std::string> const& service_names() const noexcept { return service_names_; }
    std::vector<route_label> const& routes() const noexcept { return routes_; }

    // The Prometheus text exposition format 0.0.4, or OpenMetrics 1.0 text, which adds the trace id
    // of a recent request to each bucket of the request and upstream histograms as an exemplar.
    std::string render(exposition format = exposition::prometheus_text) const;

    // Whether render() adds the process collector's series (process_cpu_seconds_total and the
    // others the Prometheus client libraries export, from /proc/self) and fanout_build_info. Off
    // by default, since an application embedding fanout may export its own; the fanout program
    // turns it on. Any thread, at any time.
    void include_process_metrics(bool on) noexcept { process_metrics_.store(on, std::memory_order_relaxed); }

    // Connections open across all loops, for --max-connections.
    std::atomic<std::size_t> open_connections{0};

  private:
    std::vector<std::string> service_names_;
    std::vector<route_label> routes_;
    std::vector<std::unique_ptr<metrics_shard>> shards_;
    std::atomic<bool> process_metrics_{false};
    // Labels made once: service="NAME" of each service; the request series (an index of
    // metrics_shard::requests and its endpoint="...",route="...": each route, then /healthz,
    // /metrics and no route).
    std::vector<std::string> service_labels_;
    std::vector<std::pair<std::size_t, std::string>> series_labels_;
    mutable std::atomic<std::size_t> last_size_{0};  // of the last page rendered
};

}  // namespace fanout
