#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <fanout/error.hpp>
#include <fanout/route.hpp>
#include <memory>
#include <mutex>
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

struct metrics_shard;  // what one event loop writes (internal)

namespace detail {
struct metrics_writer;
}

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
//
// Its series: one per service and per route of any configuration since it was made (the first
// ones given to the constructor, more added as servers take a configuration, on a reload). A
// service or route that a new configuration drops keeps its series, whose counters then stay as
// they are (never reset: rates over them are right), and one that comes back under the same name
// (a route: the same pattern and path) continues its old series. The circuit breaker gauges are
// shown for the services of the configuration taken last only, so that a removed service's open
// circuit does not alert for ever.
class metrics_registry {
  public:
    // `routes`: route_labels() of the options::routes of the servers that will share it; empty:
    // the seed's four endpoints (the routes served when none are configured).
    metrics_registry(
        std::vector<std::string> service_names, std::size_t shards, std::vector<route_label> routes = {}
    );

    metrics_registry(metrics_registry const&) = delete;
    metrics_registry& operator=(metrics_registry const&) = delete;
    ~metrics_registry();

    std::size_t shard_count() const noexcept { return shards_.size(); }
    // Every service and route with a series, in the order of their series. Any thread.
    std::vector<std::string> service_names() const;
    std::vector<route_label> routes() const;

    // The Prometheus text exposition format 0.0.4, or OpenMetrics 1.0 text, which adds the trace id
    // of a recent request to each bucket of the request and upstream histograms as an exemplar.
    std::string render(exposition format = exposition::prometheus_text) const;

    // Whether render() adds the process collector's series (process_cpu_seconds_total and the
    // others the Prometheus client libraries export, from /proc/self) and fanout_build_info. Off
    // by default, since an application embedding fanout may export its own; the fanout program
    // turns it on. Any thread, at any time.
    void include_process_metrics(bool on) noexcept { process_metrics_.store(on, std::memory_order_relaxed); }

    // Client connections open across all loops' servers now (what --max-connections bounds).
    std::size_t open_connections() const noexcept {
        return open_connections_.load(std::memory_order_relaxed);
    }

  private:
    // The servers' access: a shard has one writer, the event loop that claims it (internal).
    friend struct detail::metrics_writer;
    metrics_shard& claim(std::size_t i);
    void release(std::size_t i) noexcept;
    metrics_shard const& shard(std::size_t i) const { return *shards_.at(i); }
    // The series of each of a configuration's services (its index in a shard's `services`), and
    // of each of its routes (after first_route in a shard's `requests`), added to every shard for
    // those not seen before. Any thread.
    std::vector<std::size_t> use_services(std::vector<std::string> const& services);
    std::vector<std::size_t> use_routes(std::vector<route_label> const& routes);
    // The breaker gauges show these services (series from use_services) from now on, and no others.
    void serving(std::vector<std::size_t> const& services);
    std::atomic<std::size_t> open_connections_{0};

    // Guards the series' names and labels below, and the growing of the shards' series; held by
    // render() throughout (a reload that adds series waits for a scrape, never the other way).
    mutable std::mutex labels_;
    std::vector<std::string> service_names_;
    std::vector<route_label> routes_;
    std::vector<bool> served_;  // of each service: in the configuration taken last
    std::vector<std::unique_ptr<metrics_shard>> shards_;
    std::atomic<bool> process_metrics_{false};
    // Labels made once: service="NAME" of each service; the request series (an index of
    // metrics_shard::requests and its endpoint="...",route="...": each route, then /healthz,
    // /metrics and no route, then each route added since).
    std::vector<std::string> service_labels_;
    std::vector<std::pair<std::size_t, std::string>> series_labels_;
    mutable std::atomic<std::size_t> last_size_{0};  // of the last page rendered
};

}  // namespace fanout
