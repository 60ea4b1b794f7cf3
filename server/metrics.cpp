#include <charconv>
#include <fanout/client.hpp>
#include <fanout/metrics.hpp>
#include <stdexcept>

namespace fanout::server {

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

void histogram::observe(std::chrono::steady_clock::duration d) noexcept {
    double const seconds = std::chrono::duration<double>(d).count();
    std::size_t i = 0;
    while (i < bounds.size() && seconds > bounds[i]) ++i;
    buckets[i].add();
    sum_ns.add(static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count()));
}

void metrics_shard::count_request(
    endpoint e, std::optional<std::size_t> route, unsigned status, std::chrono::steady_clock::duration took
) noexcept {
    std::size_t code = 0;
    while (code + 1 < codes.size() && codes[code] != status) ++code;
    auto const i = route                    ? first_route + *route
                   : e == endpoint::healthz ? healthz_series
                   : e == endpoint::metrics ? metrics_series
                                            : other_series;
    if (i >= requests.size()) return;
    requests[i].answers[code].add();
    requests[i].duration.observe(took);
}

std::vector<route_label> route_labels(std::vector<route_config> const& routes) {
    std::vector<route_label> labels;
    for (auto const& r : routes)
        labels.push_back(
            {r.pattern == pattern::wg                ? endpoint::wg
             : r.pattern == pattern::channel         ? endpoint::channel
             : r.pattern == pattern::context_timeout ? endpoint::context_timeout
                                                     : endpoint::errgroup,
             r.path}
        );
    return labels;
}

metrics_registry::metrics_registry(
    std::vector<std::string> service_names, std::size_t shards, std::vector<route_label> routes
)
    : service_names_(std::move(service_names)), routes_(std::move(routes)) {
    if (routes_.empty())
        routes_ = {
            {endpoint::wg, "/api/aggregate/wg"},
            {endpoint::channel, "/api/aggregate/channel"},
            {endpoint::context_timeout, "/api/aggregate/channel-with-context-timeout"},
            {endpoint::errgroup, "/api/aggregate/errgroup"},
        };
    for (std::size_t i = 0; i < shards; ++i)
        shards_.push_back(std::make_unique<metrics_shard>(service_names_.size(), routes_.size()));
}

metrics_shard& metrics_registry::claim(std::size_t i) {
    auto& s = *shards_.at(i);
    if (s.claimed.exchange(true)) throw std::logic_error("metrics shard " + std::to_string(i) + " is in use");
    return s;
}

void metrics_registry::release(std::size_t i) noexcept {
    if (i < shards_.size()) shards_[i]->claimed = false;
}

namespace {

class writer {
  public:
    explicit writer(std::string& out) : out_(out) {}

    void header(std::string_view name, std::string_view type, std::string_view help) {
        out_ += "# HELP ";
        out_ += name;
        out_ += ' ';
        out_ += help;
        out_ += "\n# TYPE ";
        out_ += name;
        out_ += ' ';
        out_ += type;
        out_ += '\n';
    }

    // labels: already formatted, e.g. endpoint="wg",code="200"; may be empty.
    template <class Number>
    void sample(std::string_view name, std::string_view labels, Number value) {
        out_ += name;
        if (!labels.empty()) {
            out_ += '{';
            out_ += labels;
            out_ += '}';
        }
        out_ += ' ';
        char buf[32];
        auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
        out_.append(buf, ec == std::errc{} ? end : buf);
        out_ += '\n';
    }

    void histogram_samples(
        std::string_view name, std::string labels, std::vector<histogram const*> const& parts
    ) {
        std::uint64_t cumulative = 0;
        std::string prefix = labels.empty() ? "" : labels + ",";
        for (std::size_t b = 0; b <= histogram::bounds.size(); ++b) {
            for (auto const* h : parts) cumulative += h->buckets[b].value();
            sample(
                std::string(name) + "_bucket", prefix + "le=\"" + histogram::bound_labels[b] + "\"",
                cumulative
            );
        }
        std::uint64_t sum_ns = 0;
        for (auto const* h : parts) sum_ns += h->sum_ns.value();
        sample(std::string(name) + "_sum", labels, static_cast<double>(sum_ns) / 1e9);
        sample(std::string(name) + "_count", labels, cumulative);
    }

  private:
    std::string& out_;
};

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

std::string metrics_registry::render() const {
    std::string out;
    out.reserve(16 * 1024);
    writer w{out};
    auto sum = [&](auto get) {
        std::uint64_t total = 0;
        for (auto const& s : shards_) total += get(*s);
        return total;
    };

    // The series of each route, then of /healthz, /metrics and requests that matched none.
    std::vector<std::pair<std::size_t, std::string>> series;
    for (std::size_t r = 0; r < routes_.size(); ++r)
        series.emplace_back(
            metrics_shard::first_route + r,
            label("endpoint", to_string(routes_[r].pattern)) + "," + label("route", routes_[r].path)
        );
    series.emplace_back(
        metrics_shard::healthz_series, label("endpoint", "healthz") + "," + label("route", "/healthz")
    );
    series.emplace_back(
        metrics_shard::metrics_series, label("endpoint", "metrics") + "," + label("route", "/metrics")
    );
    series.emplace_back(metrics_shard::other_series, label("endpoint", "other") + "," + label("route", ""));

    w.header(
        "fanout_requests_total", "counter", "Requests answered, by endpoint (pattern), route and status code."
    );
    for (auto const& [i, labels] : series) {
        for (std::size_t c = 0; c < metrics_shard::codes.size(); ++c) {
            auto n = sum([&](metrics_shard const& s) { return s.requests[i].answers[c].value(); });
            if (n == 0) continue;
            auto code =
                metrics_shard::codes[c] ? std::to_string(metrics_shard::codes[c]) : std::string("other");
            w.sample("fanout_requests_total", labels + "," + label("code", code), n);
        }
    }

    w.header(
        "fanout_request_duration_seconds", "histogram", "Time from reading a request to having its answer."
    );
    for (auto const& [i, labels] : series) {
        std::vector<histogram const*> parts;
        for (auto const& s : shards_) parts.push_back(&s->requests[i].duration);
        w.histogram_samples("fanout_request_duration_seconds", labels, parts);
    }

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

    w.header("fanout_connections_open", "gauge", "Client connections open.");
    w.sample("fanout_connections_open", "", open_connections.load(std::memory_order_relaxed));
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

    w.header("fanout_upstream_request_duration_seconds", "histogram", "Upstream fetches, by service.");
    for (std::size_t i = 0; i < service_names_.size(); ++i) {
        std::vector<histogram const*> parts;
        for (auto const& s : shards_) parts.push_back(&s->services[i].duration);
        w.histogram_samples(
            "fanout_upstream_request_duration_seconds", label("service", service_names_[i]), parts
        );
    }

    w.header(
        "fanout_upstream_failures_total", "counter", "Failed upstream fetches, by service and error kind."
    );
    for (std::size_t i = 0; i < service_names_.size(); ++i) {
        for (std::size_t k = 0; k < error_kind_count; ++k) {
            w.sample(
                "fanout_upstream_failures_total",
                label("service", service_names_[i]) + "," +
                    label("kind", upstream::to_string(upstream::kind_at(k))),
                sum([&](metrics_shard const& s) { return s.services[i].failures[k].value(); })
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
                 "fanout_upstream_connections_opened_total", "Upstream connections opened.",
                 &metrics_shard::service_metrics::opened},
             pool_counter{
                 "fanout_upstream_connections_reused_total", "Upstream requests sent on a pooled connection.",
                 &metrics_shard::service_metrics::reused},
             pool_counter{
                 "fanout_upstream_retries_total",
                 "Requests resent because a pooled connection had been closed by the upstream.",
                 &metrics_shard::service_metrics::retried},
             pool_counter{
                 "fanout_upstream_fetch_retries_total",
                 "Requests sent again after a failure to connect or a connection lost before any answer "
                 "(max_retries).",
                 &metrics_shard::service_metrics::fetch_retries},
             pool_counter{
                 "fanout_upstream_over_budget_total",
                 "Fetches whose due hedge or retry was refused: its budget was spent.",
                 &metrics_shard::service_metrics::over_budget},
         }) {
        w.header(name, "counter", help);
        for (std::size_t i = 0; i < service_names_.size(); ++i) {
            w.sample(name, label("service", service_names_[i]), sum([&](metrics_shard const& s) {
                         return (s.services[i].*member).value();
                     }));
        }
    }

    // Two counters of a service as one series with an `outcome` label.
    using member = local_counter metrics_shard::service_metrics::*;
    auto by_outcome = [&](char const* name, char const* help, std::pair<char const*, member> a,
                          std::pair<char const*, member> b) {
        w.header(name, "counter", help);
        for (std::size_t i = 0; i < service_names_.size(); ++i) {
            for (auto [outcome, m] : {a, b}) {
                w.sample(
                    name, label("service", service_names_[i]) + "," + label("outcome", outcome),
                    sum([&](metrics_shard const& s) { return (s.services[i].*m).value(); })
                );
            }
        }
    };
    by_outcome(
        "fanout_upstream_hedges_total",
        "Hedged requests (second requests after hedge_after_ms or hedge_quantile), by whether their "
        "answer was used.",
        {"won", &metrics_shard::service_metrics::hedges_won},
        {"lost", &metrics_shard::service_metrics::hedges_lost}
    );
    by_outcome(
        "fanout_upstream_cancelled_connections_total",
        "Connections of fetches cancelled after their request was written: kept (the answer was read "
        "in the background and the connection pooled) or closed.",
        {"kept", &metrics_shard::service_metrics::settled_kept},
        {"closed", &metrics_shard::service_metrics::settled_closed}
    );
    by_outcome(
        "fanout_upstream_tls_handshakes_total",
        "TLS handshakes of new connections to https:// services: full, or resumed (a session the "
        "service issued before; far cheaper).",
        {"full", &metrics_shard::service_metrics::tls_full},
        {"resumed", &metrics_shard::service_metrics::tls_resumed}
    );

    using upstream::breaker_state;
    // One sample per service and breaker state: `get(shard metrics of the service, state)`.
    auto per_breaker_state = [&](char const* name, char const* state_label, auto get) {
        for (std::size_t i = 0; i < service_names_.size(); ++i) {
            for (auto state : {breaker_state::closed, breaker_state::open, breaker_state::half_open}) {
                w.sample(
                    name,
                    label("service", service_names_[i]) + "," +
                        label(state_label, upstream::to_string(state)),
                    sum([&](metrics_shard const& s) -> std::uint64_t { return get(s.services[i], state); })
                );
            }
        }
    };
    w.header(
        "fanout_upstream_breaker_state", "gauge",
        "Event loops whose circuit breaker for the service is in each state (each loop has its own)."
    );
    per_breaker_state("fanout_upstream_breaker_state", "state", [](auto const& m, breaker_state state) {
        return m.breaker.load() == static_cast<std::uint8_t>(state);
    });
    w.header(
        "fanout_upstream_breaker_transitions_total", "counter",
        "Circuit breaker state changes, by service and the state entered."
    );
    per_breaker_state(
        "fanout_upstream_breaker_transitions_total", "to",
        [](auto const& m, breaker_state state) {
            return m.breaker_transitions[static_cast<std::size_t>(state)].value();
        }
    );

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
    return out;
}

}  // namespace fanout::server
