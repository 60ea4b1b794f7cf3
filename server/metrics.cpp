#include "server/metrics_shard.hpp"
#include "server/process_stats.hpp"

#include <boost/version.hpp>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <fanout/client.hpp>
#include <fanout/metrics.hpp>
#include <openssl/crypto.h>
#include <stdexcept>

namespace fanout {

namespace {

// Label values escaped as the exposition format requires: backslash, double quote, line feed.
std::string label(std::string_view key, std::string_view value) {
    std::string out{key};
    out += "=\"";
    for (char c : value) {
        if (c == '\\' || c == '"') out += '\\';
        if (c == '\n') {
            out += "\\n";
            continue;
        }
        out += c;
    }
    out += '"';
    return out;
}

}  // namespace

std::string_view to_string(endpoint e) noexcept {
    switch (e) {
        case endpoint::wg:
            return "wg";
        case endpoint::channel:
            return "channel";
        case endpoint::context_timeout:
            return "context-timeout";
        case endpoint::errgroup:
            return "errgroup";
        case endpoint::healthz:
            return "healthz";
        case endpoint::metrics:
            return "metrics";
        case endpoint::other:
            return "other";
    }
    return "other";
}

void exemplar_slot::set(std::string_view trace_id, double seconds, double at) noexcept {
    if (trace_id.size() != 32) return;
    std::array<std::uint64_t, 4> words;
    std::memcpy(words.data(), trace_id.data(), 32);
    auto const s = sequence_.load(std::memory_order_relaxed);
    sequence_.store(s + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    for (std::size_t i = 0; i < words.size(); ++i) trace_id_[i].store(words[i], std::memory_order_relaxed);
    seconds_.store(seconds, std::memory_order_relaxed);
    at_.store(at, std::memory_order_relaxed);
    sequence_.store(s + 2, std::memory_order_release);
}

std::optional<exemplar_slot::exemplar> exemplar_slot::get() const noexcept {
    // A write takes nanoseconds and a loop writes one slot rarely twice in a row: a few tries suffice.
    for (int attempt = 0; attempt < 4; ++attempt) {
        auto const before = sequence_.load(std::memory_order_acquire);
        if (before == 0) return std::nullopt;
        if (before % 2) continue;
        std::array<std::uint64_t, 4> words;
        for (std::size_t i = 0; i < words.size(); ++i)
            words[i] = trace_id_[i].load(std::memory_order_relaxed);
        exemplar e{{}, seconds_.load(std::memory_order_relaxed), at_.load(std::memory_order_relaxed)};
        std::atomic_thread_fence(std::memory_order_acquire);
        if (sequence_.load(std::memory_order_relaxed) != before) continue;
        std::memcpy(e.trace_id.data(), words.data(), 32);
        return e;
    }
    return std::nullopt;
}

endpoint endpoint_of(pattern p) noexcept {
    switch (p) {
        case pattern::wg:
            return endpoint::wg;
        case pattern::channel:
            return endpoint::channel;
        case pattern::context_timeout:
            return endpoint::context_timeout;
        case pattern::errgroup:
            return endpoint::errgroup;
    }
    return endpoint::other;
}

void histogram::observe(std::chrono::steady_clock::duration d, std::string_view trace_id) noexcept {
    double const seconds = std::chrono::duration<double>(d).count();
    std::size_t i = 0;
    while (i < bounds.size() && seconds > bounds[i]) ++i;
    buckets[i].add();
    sum_ns.add(static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()));
    if (!trace_id.empty()) {
        auto const now = std::chrono::system_clock::now().time_since_epoch();
        exemplars[i].set(trace_id, seconds, std::chrono::duration<double>(now).count());
    }
}

exposition negotiate_exposition(std::string_view accept) noexcept {
    auto trim = [](std::string_view v) {
        while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
        while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
        return v;
    };
    auto lower_equals = [](std::string_view a, std::string_view b) {
        if (a.size() != b.size()) return false;
        for (std::size_t i = 0; i < a.size(); ++i)
            if ((a[i] >= 'A' && a[i] <= 'Z' ? a[i] - 'A' + 'a' : a[i]) != b[i]) return false;
        return true;
    };
    double openmetrics = 0, text = 0;
    while (!accept.empty()) {
        auto const comma = accept.find(',');
        auto range = accept.substr(0, comma);
        accept = comma == std::string_view::npos ? std::string_view{} : accept.substr(comma + 1);
        auto const semicolon = range.find(';');
        auto const type = trim(range.substr(0, semicolon));
        double q = 1;
        for (auto params = semicolon == std::string_view::npos ? std::string_view{}
                                                               : range.substr(semicolon + 1);
             !params.empty();) {
            auto const next = params.find(';');
            auto const param = trim(params.substr(0, next));
            params = next == std::string_view::npos ? std::string_view{} : params.substr(next + 1);
            if (param.size() > 2 && (param[0] == 'q' || param[0] == 'Q') && param[1] == '=') {
                double value = 0;
                auto [end, ec] = std::from_chars(param.data() + 2, param.data() + param.size(), value);
                q = ec == std::errc{} && end == param.data() + param.size() && value >= 0 && value <= 1
                        ? value
                        : 0;
            }
        }
        if (lower_equals(type, "application/openmetrics-text"))
            openmetrics = std::max(openmetrics, q);
        else if (lower_equals(type, "text/plain"))
            text = std::max(text, q);
    }
    return openmetrics > 0 && openmetrics >= text ? exposition::openmetrics : exposition::prometheus_text;
}

std::string_view content_type(exposition format) noexcept {
    return format == exposition::openmetrics ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                                             : "text/plain; version=0.0.4; charset=utf-8";
}

void metrics_shard::count_request(
    endpoint e,
    std::optional<std::size_t> route,
    unsigned status,
    std::chrono::steady_clock::duration took,
    std::string_view trace_id
) noexcept {
    std::size_t code = 0;
    while (code + 1 < codes.size() && codes[code] != status) ++code;
    auto const i = route                    ? first_route + *route
                   : e == endpoint::healthz ? healthz_series
                   : e == endpoint::metrics ? metrics_series
                                            : other_series;
    if (i >= requests.size()) return;
    requests[i].answers[code].add();
    requests[i].duration.observe(took, trace_id);
}

std::vector<route_label> route_labels(std::vector<route_config> const& routes) {
    std::vector<route_label> labels;
    for (auto const& r : routes) labels.push_back({endpoint_of(r.pattern), r.path});
    return labels;
}

metrics_registry::metrics_registry(
    std::vector<std::string> service_names, std::size_t shards, std::vector<route_label> routes
)
    : service_names_(std::move(service_names)),
      routes_(std::move(routes)),
      served_(service_names_.size(), true) {
    if (routes_.empty())
        routes_ = {
            {endpoint::wg, "/api/aggregate/wg"},
            {endpoint::channel, "/api/aggregate/channel"},
            {endpoint::context_timeout, "/api/aggregate/channel-with-context-timeout"},
            {endpoint::errgroup, "/api/aggregate/errgroup"},
        };
    for (std::size_t i = 0; i < shards; ++i)
        shards_.push_back(std::make_unique<metrics_shard>(service_names_.size(), routes_.size()));
    for (auto const& name : service_names_) service_labels_.push_back(label("service", name));
    for (std::size_t r = 0; r < routes_.size(); ++r)
        series_labels_.emplace_back(
            metrics_shard::first_route + r,
            label("endpoint", to_string(routes_[r].pattern)) + "," + label("route", routes_[r].path)
        );
    series_labels_.emplace_back(
        metrics_shard::healthz_series, label("endpoint", "healthz") + "," + label("route", "/healthz")
    );
    series_labels_.emplace_back(
        metrics_shard::metrics_series, label("endpoint", "metrics") + "," + label("route", "/metrics")
    );
    series_labels_.emplace_back(
        metrics_shard::other_series, label("endpoint", "other") + "," + label("route", "")
    );
}

metrics_registry::~metrics_registry() = default;

metrics_shard& metrics_registry::claim(std::size_t i) {
    auto& s = *shards_.at(i);
    if (s.claimed.exchange(true)) throw std::logic_error("metrics shard " + std::to_string(i) + " is in use");
    return s;
}

void metrics_registry::release(std::size_t i) noexcept {
    if (i < shards_.size()) shards_[i]->claimed = false;
}

std::vector<std::string> metrics_registry::service_names() const {
    std::lock_guard lock{labels_};
    return service_names_;
}

std::vector<route_label> metrics_registry::routes() const {
    std::lock_guard lock{labels_};
    return routes_;
}

std::vector<std::size_t> metrics_registry::use_services(std::vector<std::string> const& services) {
    std::lock_guard lock{labels_};
    std::vector<std::size_t> series;
    for (auto const& name : services) {
        auto it = std::find(service_names_.begin(), service_names_.end(), name);
        series.push_back(static_cast<std::size_t>(it - service_names_.begin()));
        if (it != service_names_.end()) continue;
        service_names_.push_back(name);
        service_labels_.push_back(label("service", name));
    }
    // Every shard has the series before anyone is told its index.
    for (auto& s : shards_) s->services.grow_to(service_names_.size());
    served_.resize(service_names_.size(), false);
    return series;
}

std::vector<std::size_t> metrics_registry::use_routes(std::vector<route_label> const& routes) {
    std::lock_guard lock{labels_};
    std::vector<std::size_t> series;
    for (auto const& route : routes) {
        auto it = std::find(routes_.begin(), routes_.end(), route);
        auto const r = static_cast<std::size_t>(it - routes_.begin());
        series.push_back(r);
        if (it != routes_.end()) continue;
        routes_.push_back(route);
        series_labels_.emplace_back(
            metrics_shard::first_route + r,
            label("endpoint", to_string(route.pattern)) + "," + label("route", route.path)
        );
    }
    for (auto& s : shards_) s->requests.grow_to(metrics_shard::first_route + routes_.size());
    return series;
}

void metrics_registry::serving(std::vector<std::size_t> const& services) {
    std::lock_guard lock{labels_};
    served_.assign(service_names_.size(), false);
    for (auto i : services)
        if (i < served_.size()) served_[i] = true;
}

namespace {

// The page, written straight into one string: a scrape of 50 services and 20 routes writes
// thousands of lines, so no line makes a string of its own.
class writer {
  public:
    writer(std::string& out, exposition format)
        : out_(out), openmetrics_(format == exposition::openmetrics) {}

    // OpenMetrics names a counter's family without the _total of its samples, and escapes quotes
    // in help text.
    void header(std::string_view name, std::string_view type, std::string_view help) {
        if (openmetrics_ && type == "counter" && name.ends_with("_total")) name.remove_suffix(6);
        out_ += "# HELP ";
        out_ += name;
        out_ += ' ';
        for (char c : help) {
            if (c == '\\' || (c == '"' && openmetrics_)) out_ += '\\';
            if (c == '\n') {
                out_ += "\\n";
                continue;
            }
            out_ += c;
        }
        out_ += "\n# TYPE ";
        out_ += name;
        out_ += ' ';
        out_ += type;
        out_ += '\n';
    }

    // `labels` and `more`: already formatted (e.g. endpoint="wg",code="200"), either may be empty.
    template <class Number>
    void sample(std::string_view name, std::string_view labels, Number value, std::string_view more = {}) {
        out_ += name;
        open_labels(labels, more);
        if (!labels.empty() || !more.empty()) out_ += '}';
        out_ += ' ';
        number(value);
        out_ += '\n';
    }

    // The buckets, sum and count of one histogram summed over the loops (`of(shard)` gives a
    // shard's); in OpenMetrics, each bucket with the most recent exemplar of any loop.
    template <class Shards, class Of>
    void histogram_samples(
        std::string_view bucket_name,  // NAME_bucket
        std::string_view name,
        std::string_view labels,
        std::string_view more,
        Shards const& shards,
        Of of
    ) {
        std::uint64_t cumulative = 0;
        for (std::size_t b = 0; b <= histogram::bounds.size(); ++b) {
            for (auto const& s : shards) cumulative += of(*s).buckets[b].value();
            out_ += bucket_name;
            open_labels(labels, more);
            if (!labels.empty() || !more.empty()) out_ += ',';
            out_ += "le=\"";
            out_ += histogram::bound_labels[b];
            out_ += "\"} ";
            number(cumulative);
            if (openmetrics_) exemplar_of(shards, of, b);
            out_ += '\n';
        }
        std::uint64_t sum_ns = 0;
        for (auto const& s : shards) sum_ns += of(*s).sum_ns.value();
        out_ += name;
        out_ += "_sum";
        open_labels(labels, more);
        if (!labels.empty() || !more.empty()) out_ += '}';
        out_ += ' ';
        number(static_cast<double>(sum_ns) / 1e9);
        out_ += '\n';
        out_ += name;
        out_ += "_count";
        open_labels(labels, more);
        if (!labels.empty() || !more.empty()) out_ += '}';
        out_ += ' ';
        number(cumulative);
        out_ += '\n';
    }

    void end() {
        if (openmetrics_) out_ += "# EOF\n";
    }

  private:
    // `{labels,more` (no closing brace), or nothing when both are empty.
    void open_labels(std::string_view labels, std::string_view more) {
        if (labels.empty() && more.empty()) return;
        out_ += '{';
        out_ += labels;
        if (!labels.empty() && !more.empty()) out_ += ',';
        out_ += more;
    }

    template <class Number>
    void number(Number value) {
        char buf[32];
        auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
        out_.append(buf, ec == std::errc{} ? end : buf);
    }

    // ` # {trace_id="..."} value timestamp`
    template <class Shards, class Of>
    void exemplar_of(Shards const& shards, Of of, std::size_t bucket) {
        std::optional<exemplar_slot::exemplar> latest;
        for (auto const& s : shards)
            if (auto e = of(*s).exemplars[bucket].get(); e && (!latest || e->at > latest->at)) latest = e;
        if (!latest) return;
        out_ += " # {trace_id=\"";
        out_.append(latest->trace_id.data(), latest->trace_id.size());
        out_ += "\"} ";
        number(latest->seconds);
        out_ += ' ';
        number(latest->at);
    }

    std::string& out_;
    bool openmetrics_;
};

// The process collector of the Prometheus client libraries (names, meanings, help), and what
// this build is made of.
void process_samples(writer& w) {
    if (auto const p = read_process_stats()) {
        w.header("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.");
        w.sample("process_cpu_seconds_total", "", p->cpu_seconds);
        w.header("process_open_fds", "gauge", "Number of open file descriptors.");
        w.sample("process_open_fds", "", p->open_fds);
        w.header("process_max_fds", "gauge", "Maximum number of open file descriptors.");
        w.sample("process_max_fds", "", p->max_fds);
        w.header("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
        w.sample("process_virtual_memory_bytes", "", p->virtual_bytes);
        w.header("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
        w.sample("process_resident_memory_bytes", "", p->resident_bytes);
        w.header(
            "process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds."
        );
        w.sample("process_start_time_seconds", "", p->start_time_seconds);
    }
    auto const boost = std::to_string(BOOST_VERSION / 100000) + "." +
                       std::to_string(BOOST_VERSION / 100 % 1000) + "." + std::to_string(BOOST_VERSION % 100);
    // OpenSSL as loaded at run time, which may be newer than the headers the build saw.
    w.header(
        "fanout_build_info", "gauge", "Always 1: the versions of fanout and of the libraries it runs with."
    );
    w.sample(
        "fanout_build_info",
        label("version", FANOUT_VERSION) + "," + label("boost", boost) + "," +
            label("openssl", OpenSSL_version(OPENSSL_VERSION_STRING)),
        1
    );
}

// The label of each value of an enum: outcome="ok", kind="timeout", ...
template <std::size_t N, class Name>
std::array<std::string, N> labels_of(std::string_view key, Name name) {
    std::array<std::string, N> out;
    for (std::size_t i = 0; i < N; ++i) out[i] = label(key, name(i));
    return out;
}

}  // namespace

std::string metrics_registry::render(exposition format) const {
    std::lock_guard lock{labels_};  // the series as they are now: the shards have at least these
    std::string out;
    // The last page's size: one allocation, no copy as it grows.
    out.reserve(last_size_.load(std::memory_order_relaxed) + 4096);
    writer w{out, format};
    auto sum = [&](auto get) {
        std::uint64_t total = 0;
        for (auto const& s : shards_) total += get(*s);
        return total;
    };

    static auto const code_labels = labels_of<metrics_shard::codes.size()>("code", [](std::size_t c) {
        return metrics_shard::codes[c] ? std::to_string(metrics_shard::codes[c]) : std::string("other");
    });
    w.header(
        "fanout_requests_total", "counter", "Requests answered, by endpoint (pattern), route and status code."
    );
    for (auto const& [i, labels] : series_labels_) {
        for (std::size_t c = 0; c < metrics_shard::codes.size(); ++c) {
            auto n = sum([&](metrics_shard const& s) { return s.requests[i].answers[c].value(); });
            if (n == 0) continue;
            w.sample("fanout_requests_total", labels, n, code_labels[c]);
        }
    }

    w.header(
        "fanout_request_duration_seconds", "histogram", "Time from reading a request to having its answer."
    );
    for (auto const& [i, labels] : series_labels_)
        w.histogram_samples(
            "fanout_request_duration_seconds_bucket", "fanout_request_duration_seconds", labels, {}, shards_,
            [i = i](metrics_shard const& s) -> histogram const& { return s.requests[i].duration; }
        );

    w.header(
        "fanout_client_disconnects_total", "counter",
        "Requests cancelled because the client went away before the answer."
    );
    for (std::size_t e = 0; e < endpoint_count; ++e) {
        if (e > static_cast<std::size_t>(endpoint::errgroup)) break;
        w.sample(
            "fanout_client_disconnects_total", label("endpoint", to_string(endpoint(e))),
            sum([&](metrics_shard const& s) { return s.client_disconnects[e].value(); })
        );
    }

    w.header("fanout_requests_in_flight", "gauge", "Requests being handled.");
    std::int64_t in_flight = 0;
    for (auto const& s : shards_) in_flight += s->in_flight.value();
    w.sample("fanout_requests_in_flight", "", in_flight);

    w.header(
        "fanout_draining", "gauge",
        "1 from the start of a shutdown on: the drain delay (/healthz answers 503), then the grace."
    );
    w.sample(
        "fanout_draining", "",
        sum([](auto const& s) -> std::uint64_t { return s.draining.load(); }) > 0 ? 1 : 0
    );

    w.header("fanout_connections_open", "gauge", "Client connections open.");
    w.sample("fanout_connections_open", "", open_connections());
    w.header("fanout_connections_accepted_total", "counter", "Client connections accepted.");
    w.sample("fanout_connections_accepted_total", "", sum([](auto const& s) {
                 return s.connections_accepted.value();
             }));
    w.header(
        "fanout_connections_rejected_total", "counter", "Client connections refused over --max-connections."
    );
    w.sample("fanout_connections_rejected_total", "", sum([](auto const& s) {
                 return s.connections_rejected.value();
             }));
    w.header(
        "fanout_connections_timed_out_total", "counter",
        "Client connections closed by the idle or request-head timeout."
    );
    w.sample("fanout_connections_timed_out_total", "", sum([](auto const& s) {
                 return s.connections_timed_out.value();
             }));

    static auto const outcome_labels = labels_of<request_outcome_count>("outcome", [](std::size_t o) {
        return fanout::to_string(request_outcome(o));
    });
    w.header(
        "fanout_upstream_request_duration_seconds", "histogram",
        "Requests sent to upstream services (first tries, hedges, retries; not those an open circuit "
        "refused), by service and outcome: ok, error (fanout_upstream_failures_total says which), "
        "cancelled (fanout_upstream_cancellations_total says why)."
    );
    for (std::size_t i = 0; i < service_labels_.size(); ++i)
        for (std::size_t o = 0; o < request_outcome_count; ++o)
            w.histogram_samples(
                "fanout_upstream_request_duration_seconds_bucket", "fanout_upstream_request_duration_seconds",
                service_labels_[i], outcome_labels[o], shards_,
                [i, o](metrics_shard const& s) -> histogram const& { return s.services[i].requests[o]; }
            );

    // Every kind a request fails with: not circuit_open (no request) nor cancelled (not a failure).
    static auto const kind_labels =
        labels_of<error_kind_count>("kind", [](std::size_t k) { return fanout::to_string(kind_at(k)); });
    w.header(
        "fanout_upstream_failures_total", "counter",
        "Upstream requests failed, by service and error kind (cancellations are not failures)."
    );
    for (std::size_t i = 0; i < service_labels_.size(); ++i) {
        for (std::size_t k = 0; k < error_kind_count; ++k) {
            if (kind_at(k) == error_kind::circuit_open || kind_at(k) == error_kind::cancelled) continue;
            w.sample(
                "fanout_upstream_failures_total", service_labels_[i],
                sum([&](metrics_shard const& s) { return s.services[i].failures[k].value(); }), kind_labels[k]
            );
        }
    }
    static auto const reason_labels = labels_of<cancel_reason_count>("reason", [](std::size_t r) {
        return fanout::to_string(cancel_reason(r));
    });
    w.header(
        "fanout_upstream_cancellations_total", "counter",
        "Upstream requests cancelled before their answer, by service and reason: sibling_failed "
        "(errgroup), client_gone, deadline (the request's), shutdown, hedge_lost."
    );
    for (std::size_t i = 0; i < service_labels_.size(); ++i) {
        for (std::size_t r = 0; r < cancel_reason_count; ++r) {
            w.sample(
                "fanout_upstream_cancellations_total", service_labels_[i],
                sum([&](metrics_shard const& s) { return s.services[i].cancellations[r].value(); }),
                reason_labels[r]
            );
        }
    }

    struct pool_counter {
        char const* name;
        char const* help;
        local_counter metrics_shard::service_metrics::*member;
    };
    for (auto [name, help, member] : {
             pool_counter{
                 "fanout_upstream_circuit_open_total",
                 "Fetches failed at once as circuit_open, or retries refused, by the open circuit "
                 "breaker: not sent, so not upstream requests.",
                 &metrics_shard::service_metrics::circuit_open},
             pool_counter{
                 "fanout_upstream_connections_opened_total", "Upstream connections opened.",
                 &metrics_shard::service_metrics::opened},
             pool_counter{
                 "fanout_upstream_connections_reused_total", "Upstream requests sent on a pooled connection.",
                 &metrics_shard::service_metrics::reused},
             pool_counter{
                 "fanout_upstream_stale_connection_resends_total",
                 "Requests resent on a new connection because the pooled one had been closed by the "
                 "upstream.",
                 &metrics_shard::service_metrics::retried},
             pool_counter{
                 "fanout_upstream_failure_retries_total",
                 "Requests sent again after a failure to connect or a connection lost before any answer "
                 "(max_retries).",
                 &metrics_shard::service_metrics::fetch_retries},
             // The old names of the two above, kept for one release so that dashboards can move.
             pool_counter{
                 "fanout_upstream_retries_total",
                 "Deprecated, removed in the next release: fanout_upstream_stale_connection_resends_total.",
                 &metrics_shard::service_metrics::retried},
             pool_counter{
                 "fanout_upstream_fetch_retries_total",
                 "Deprecated, removed in the next release: fanout_upstream_failure_retries_total.",
                 &metrics_shard::service_metrics::fetch_retries},
             pool_counter{
                 "fanout_upstream_over_budget_total",
                 "Fetches whose due hedge or retry was refused: its budget was spent.",
                 &metrics_shard::service_metrics::over_budget},
         }) {
        w.header(name, "counter", help);
        for (std::size_t i = 0; i < service_labels_.size(); ++i) {
            w.sample(name, service_labels_[i], sum([&](metrics_shard const& s) {
                         return (s.services[i].*member).value();
                     }));
        }
    }

    // Two counters of a service as one series with an `outcome` label.
    using member = local_counter metrics_shard::service_metrics::*;
    auto by_outcome = [&](char const* name, char const* help, std::pair<std::string_view, member> a,
                          std::pair<std::string_view, member> b) {
        w.header(name, "counter", help);
        for (std::size_t i = 0; i < service_labels_.size(); ++i) {
            for (auto [outcome, m] : {a, b}) {
                w.sample(
                    name, service_labels_[i],
                    sum([&](metrics_shard const& s) { return (s.services[i].*m).value(); }), outcome
                );
            }
        }
    };
    by_outcome(
        "fanout_upstream_hedges_total",
        "Hedged requests (second requests after hedge_after_ms or hedge_quantile), by whether their "
        "answer was used.",
        {R"(outcome="won")", &metrics_shard::service_metrics::hedges_won},
        {R"(outcome="lost")", &metrics_shard::service_metrics::hedges_lost}
    );
    by_outcome(
        "fanout_upstream_cancelled_connections_total",
        "Connections of fetches cancelled after their request was written: kept (the answer was read "
        "in the background and the connection pooled) or closed.",
        {R"(outcome="kept")", &metrics_shard::service_metrics::settled_kept},
        {R"(outcome="closed")", &metrics_shard::service_metrics::settled_closed}
    );
    by_outcome(
        "fanout_upstream_tls_handshakes_total",
        "TLS handshakes of new connections to https:// services: full, or resumed (a session the "
        "service issued before; far cheaper).",
        {R"(outcome="full")", &metrics_shard::service_metrics::tls_full},
        {R"(outcome="resumed")", &metrics_shard::service_metrics::tls_resumed}
    );

    constexpr std::array states{breaker_state::closed, breaker_state::open, breaker_state::half_open};
    static auto const state_labels =
        labels_of<states.size()>("state", [](std::size_t s) { return fanout::to_string(breaker_state(s)); });
    static auto const to_labels =
        labels_of<states.size()>("to", [](std::size_t s) { return fanout::to_string(breaker_state(s)); });
    // Each loop has its own breaker, which opens on the failures that loop saw: one 0/1 series per
    // loop, so that one loop stuck open shows, and summing over `loop` counts loops per state.
    w.header(
        "fanout_upstream_breaker_state", "gauge",
        "1 for the state the circuit breaker of the service is in on the event loop, 0 for the others."
    );
    std::string labels;
    for (std::size_t i = 0; i < service_labels_.size(); ++i) {
        if (!served_[i]) continue;  // a removed service's circuit is nobody's
        for (std::size_t l = 0; l < shards_.size(); ++l) {
            auto const now = shards_[l]->services[i].breaker.load(std::memory_order_relaxed);
            labels = service_labels_[i];
            labels += ",loop=\"";
            labels += std::to_string(l);
            labels += '"';
            for (auto state : states)
                w.sample(
                    "fanout_upstream_breaker_state", labels, now == static_cast<std::uint8_t>(state) ? 1 : 0,
                    state_labels[static_cast<std::size_t>(state)]
                );
        }
    }
    w.header(
        "fanout_upstream_breaker_transitions_total", "counter",
        "Circuit breaker state changes, by service and the state entered."
    );
    for (std::size_t i = 0; i < service_labels_.size(); ++i) {
        for (auto state : states) {
            auto const s = static_cast<std::size_t>(state);
            w.sample(
                "fanout_upstream_breaker_transitions_total", service_labels_[i],
                sum([&](metrics_shard const& m) { return m.services[i].breaker_transitions[s].value(); }),
                to_labels[s]
            );
        }
    }

    w.header(
        "fanout_background_fetches", "gauge",
        "wg and channel requests whose client left while their fetches go on."
    );
    std::int64_t background = 0;
    for (auto const& s : shards_) background += s->background_fetches.value();
    w.sample("fanout_background_fetches", "", background);
    w.header(
        "fanout_background_cancelled_total", "counter",
        "Background requests cancelled, the oldest first, over --max-background-fetches."
    );
    w.sample("fanout_background_cancelled_total", "", sum([](auto const& s) {
                 return s.background_cancelled.value();
             }));
    if (process_metrics_.load(std::memory_order_relaxed)) process_samples(w);
    w.end();
    last_size_.store(out.size(), std::memory_order_relaxed);
    return out;
}

}  // namespace fanout
