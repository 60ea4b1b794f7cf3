#include "server/aggregator_core.hpp"

#include "handlers/handlers.hpp"
#include "server/log.hpp"

#include <boost/asio/error.hpp>
#include <boost/system/system_error.hpp>

#include <fanout/metrics.hpp>
#include <spdlog/spdlog.h>
#include <stdexcept>

namespace fanout {

namespace net = boost::asio;

std::vector<std::string> service_names(options const& opts) {
    std::vector<std::string> names;
    for (auto const& s : opts.upstreams) names.push_back(s.name);
    return names;
}

metrics_shard& claim_shard(metrics_registry& reg, std::size_t shard, options const& opts) {
    if (reg.service_names() != service_names(opts))
        throw std::invalid_argument("the metrics registry was made for other services");
    if (reg.routes() != metrics_registry({}, 0, route_labels(opts.routes)).routes())
        throw std::invalid_argument(
            "the metrics registry was made for other routes (give it route_labels(options.routes))"
        );
    return detail::metrics_writer::claim(reg, shard);
}

aggregator_core::aggregator_core(
    net::any_io_executor ex, options const& opts, std::shared_ptr<metrics_registry> reg, std::size_t shard
)
    : routes(opts),
      registry(
          reg ? std::move(reg)
              : std::make_shared<metrics_registry>(service_names(opts), 1, route_labels(opts.routes))
      ),
      shard_index(shard),
      metrics(claim_shard(*registry, shard, opts)),
      log(logger_for(opts)),
      log_limit(opts.log_rate_limit),
      client(
          std::move(ex),
          opts.upstreams,
          {.max_body = opts.max_upstream_body,
           .max_head = opts.max_upstream_head,
           .max_idle_per_service = opts.upstream_pool_size,
           .deadline_header = opts.deadline_header,
           .dns_refresh = opts.dns_refresh,
           .on_cancelled_connection =
               [this](std::size_t i, bool kept) {
                   auto& m = metrics.services[i];
                   (kept ? m.settled_kept : m.settled_closed).add();
               },
           .on_breaker = [this](fanout::breaker_change const& c) { breaker_changed(c); },
           .on_request = [this](fanout::request_report const& r) { request_ended(r); },
           .on_tls_handshake =
               [this](std::size_t i, bool resumed) {
                   auto& m = metrics.services[i];
                   (resumed ? m.tls_resumed : m.tls_full).add();
               }}
      ),
      recorder(&metrics, log, &log_limit),
      ctx{.client = client, .observer = &recorder},
      max_fetch(opts.max_fetch) {
    // Said once per process (the first loop's core), at start, for every service it concerns.
    if (shard_index != 0) return;
    for (auto const& svc : opts.upstreams)
        if (svc.tls && svc.tls->insecure_skip_verify)
            log->warn(
                R"({{"event":"tls_verification_off","service":{},"message":"insecure_skip_verify: the )"
                R"(certificate and name of {} are not checked"}})",
                json_quote(svc.name), svc.host_header
            );
}

// Transitions are few (at most two a cooldown per service and loop): each is logged, an opening
// with the failure that opened it.
void aggregator_core::breaker_changed(fanout::breaker_change const& c) {
    auto& m = metrics.services[c.service];
    m.breaker.store(static_cast<std::uint8_t>(c.state), std::memory_order_relaxed);
    m.breaker_transitions[static_cast<std::size_t>(c.state)].add();
    auto const& svc = client.services()[c.service];
    if (c.state != fanout::breaker_state::open || !c.failure) {
        log->info(
            R"({{"event":"circuit_breaker","service":"{}","state":"{}","cooldown_ms":{}}})", svc.name,
            fanout::to_string(c.state), svc.breaker_cooldown.count()
        );
        return;
    }
    log->warn(
        R"({{"event":"circuit_breaker","service":"{}","state":"open","cooldown_ms":{},"failures":{},"kind":"{}","message":{}}})",
        svc.name, svc.breaker_cooldown.count(), c.failures, fanout::to_string(c.failure->kind),
        json_quote(c.failure->message)
    );
}

// Every request sent to a service: its duration by outcome, a failure by kind, a cancellation by
// reason. Runs for each one: counters only.
void aggregator_core::request_ended(fanout::request_report const& r) {
    auto& m = metrics.services[r.service];
    m.requests[static_cast<std::size_t>(r.outcome)].observe(r.elapsed, r.trace_id);
    if (r.outcome == fanout::request_outcome::error)
        m.failures[fanout::kind_index(r.kind)].add();
    else if (r.outcome == fanout::request_outcome::cancelled)
        m.cancellations[static_cast<std::size_t>(r.reason)].add();
}

aggregator_core::~aggregator_core() {
    detail::metrics_writer::release(*registry, shard_index);
}

response aggregator_core::metrics_page(std::string_view accept) const {
    auto const format = negotiate_exposition(accept);
    auto res = json_response(200, registry->render(format));
    res.content_type = content_type(format);
    return res;
}

net::awaitable<response> aggregator_core::answer(dispatch const& r, fanout::part_sink* parts) {
    try {
        fanout::aggregate_request aggregate{r.timeout};
        aggregate.max_fetch = max_fetch;
        aggregate.params = r.params;
        aggregate.trace = r.trace;
        aggregate.route = r.plan;
        aggregate.targets = r.targets;
        aggregate.forwarded = r.forwarded;
        aggregate.parts = parts;
        aggregate.cause = r.cause;
        fanout::reply reply;
        switch (r.plan->pattern) {
            case pattern::wg:
                reply = co_await fanout::wait_group(ctx, std::move(aggregate));
                break;
            case pattern::channel:
                reply = co_await fanout::channel(ctx, std::move(aggregate));
                break;
            case pattern::context_timeout:
                reply = co_await fanout::context_timeout(ctx, std::move(aggregate));
                break;
            case pattern::errgroup:
                reply = co_await fanout::errgroup(ctx, std::move(aggregate));
                break;
        }
        auto res = json_response(reply.status, std::move(reply.body));
        res.complete = reply.complete;
        res.server_timing = std::move(reply.server_timing);
        co_return res;
    } catch (boost::system::system_error const& e) {
        if (e.code() != net::error::operation_aborted &&
            log_limit.admit(*log, spdlog::level::err, "handler_failed"))
            log->error(
                R"({{"event":"handler_failed","message":{},"trace_id":"{}"}})", json_quote(e.what()),
                r.trace.id()
            );
    } catch (std::exception const& e) {
        if (log_limit.admit(*log, spdlog::level::err, "handler_failed"))
            log->error(
                R"({{"event":"handler_failed","message":{},"trace_id":"{}"}})", json_quote(e.what()),
                r.trace.id()
            );
    }
    // A bug or a cancellation: answer without disclosing anything.
    if (parts) parts->done({}, 500);
    co_return error_response(500, "internal error");
}

}  // namespace fanout
