#include "server/loop_engine.hpp"

#include "handlers/handlers.hpp"
#include "server/log.hpp"

#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
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

metrics_shard& claim_shard(metrics_registry& reg, std::size_t shard) {
    return detail::metrics_writer::claim(reg, shard);
}

namespace {

fanout::client_options client_options_of(options const& opts) {
    return {
        .max_body = opts.max_upstream_body,
        .max_head = opts.max_upstream_head,
        .max_idle_per_service = opts.upstream_pool_size,
        .deadline_header = opts.deadline_header,
        .dns_refresh = opts.dns_refresh,
    };
}

std::vector<route_label> labels_of(route_table const& routes) {
    std::vector<route_label> labels;
    for (auto const& plan : routes.plans()) labels.push_back({endpoint_of(plan.pattern), plan.path});
    return labels;
}

}  // namespace

void check_servable(options const& opts) {
    (void)route_table{opts};
    net::io_context never_run;
    auto client_options = client_options_of(opts);
    // Never answered: nothing is looked up (the loop never runs), and nothing waits for it.
    client_options.resolve = [](std::string const&, std::uint16_t, fanout::resolve_handler) {};
    fanout::client{never_run.get_executor(), opts.upstreams, std::move(client_options)};
}

loop_config::loop_config(loop_engine& engine, options o, loop_config* previous)
    : engine_(engine),
      opts(std::move(o)),
      routes(opts),
      service_series(detail::metrics_writer::use_services(*engine.registry, service_names(opts))),
      route_series(detail::metrics_writer::use_routes(*engine.registry, labels_of(routes))),
      client([&] {
          auto c = client_options_of(opts);
          c.on_cancelled_connection = [this](std::size_t i, bool kept) {
              auto& m = engine_.metrics.services[service_series[i]];
              (kept ? m.settled_kept : m.settled_closed).add();
          };
          c.on_breaker = [this](fanout::breaker_change const& change) { breaker_changed(change); };
          c.on_request = [this](fanout::request_report const& r) { request_ended(r); };
          c.on_tls_handshake = [this](std::size_t i, bool resumed) {
              auto& m = engine_.metrics.services[service_series[i]];
              (resumed ? m.tls_resumed : m.tls_full).add();
          };
          if (!previous) return fanout::client{engine.ex, opts.upstreams, std::move(c)};
          return fanout::client{engine.ex, opts.upstreams, std::move(c), previous->client};
      }()),
      recorder(&engine.metrics, engine.log, &engine.log_limit, &service_series),
      ctx{.client = client, .observer = &recorder, .stats = engine.stats} {
}

// Transitions are few (at most two a cooldown per service and loop): each is logged, an opening
// with the failure that opened it. A replaced configuration's fetches may still move a breaker: the
// gauge shows the current configuration's breaker of that name (the same one when the service was
// carried over), or nothing.
void loop_config::breaker_changed(fanout::breaker_change const& c) {
    auto const& svc = client.services()[c.service];
    auto& m = engine_.metrics.services[service_series[c.service]];
    if (current_) {
        m.breaker.store(static_cast<std::uint8_t>(c.state), std::memory_order_relaxed);
    } else if (auto const& in_use = engine_.config()) {
        if (auto i = in_use->client.index_of(svc.name))
            m.breaker.store(static_cast<std::uint8_t>(in_use->client.breaker(*i)), std::memory_order_relaxed);
    }
    m.breaker_transitions[static_cast<std::size_t>(c.state)].add();
    auto& log = *engine_.log;
    if (c.state != fanout::breaker_state::open || !c.failure) {
        log.info(
            R"({{"event":"circuit_breaker","service":"{}","state":"{}","cooldown_ms":{}}})", svc.name,
            fanout::to_string(c.state), svc.breaker_cooldown.count()
        );
        return;
    }
    log.warn(
        R"({{"event":"circuit_breaker","service":"{}","state":"open","cooldown_ms":{},"failures":{},"kind":"{}","message":{}}})",
        svc.name, svc.breaker_cooldown.count(), c.failures, fanout::to_string(c.failure->kind),
        json_quote(c.failure->message)
    );
}

// Every request sent to a service: its duration by outcome, a failure by kind, a cancellation by
// reason. Runs for each one: counters only.
void loop_config::request_ended(fanout::request_report const& r) {
    auto& m = engine_.metrics.services[service_series[r.service]];
    m.requests[static_cast<std::size_t>(r.outcome)].observe(r.elapsed, r.trace_id);
    if (r.outcome == fanout::request_outcome::error)
        m.failures[fanout::kind_index(r.kind)].add();
    else if (r.outcome == fanout::request_outcome::cancelled)
        m.cancellations[static_cast<std::size_t>(r.reason)].add();
}

loop_engine::loop_engine(
    net::any_io_executor executor,
    options const& opts,
    std::shared_ptr<metrics_registry> reg,
    std::size_t shard
)
    : ex(std::move(executor)),
      registry(
          reg ? std::move(reg)
              : std::make_shared<metrics_registry>(service_names(opts), 1, route_labels(opts.routes))
      ),
      shard_index(shard),
      metrics(claim_shard(*registry, shard)),
      log(logger_for(opts)),
      log_limit(opts.log_rate_limit),
      own_logger_(!opts.logger) {
    try {
        install(std::make_shared<loop_config>(*this, opts, nullptr));
    } catch (...) {
        detail::metrics_writer::release(*registry, shard_index);
        throw;
    }
    // Said once per process (the first loop's engine), at start, for every service it concerns.
    if (shard_index != 0) return;
    for (auto const& svc : opts.upstreams)
        if (svc.tls && svc.tls->insecure_skip_verify)
            log->warn(
                R"({{"event":"tls_verification_off","service":{},"message":"insecure_skip_verify: the )"
                R"(certificate and name of {} are not checked"}})",
                json_quote(svc.name), svc.host_header
            );
}

loop_engine::~loop_engine() {
    // Requests may outlive the engine only in a server, which holds the engine as long as its sessions.
    config_.reset();
    detail::metrics_writer::release(*registry, shard_index);
}

std::shared_ptr<loop_config> loop_engine::prepare(options opts) {
    return std::make_shared<loop_config>(*this, std::move(opts), config_.get());
}

void loop_engine::install(std::shared_ptr<loop_config> next) {
    auto previous = std::exchange(config_, std::move(next));
    if (previous) {
        previous->current_ = false;
        previous->client.retire(config_->client);
    }
    detail::metrics_writer::serving(*registry, config_->service_series);
    if (own_logger_) log->set_level(spdlog::level::from_str(config_->opts.log_level));
    auto const& services = config_->client.services();
    for (std::size_t i = 0; i < services.size(); ++i)
        metrics.services[config_->service_series[i]].breaker.store(
            static_cast<std::uint8_t>(config_->client.breaker(i)), std::memory_order_relaxed
        );
    log_limit.per_second(config_->opts.log_rate_limit);
}

response loop_engine::metrics_page(std::string_view accept) const {
    auto const format = negotiate_exposition(accept);
    auto res = json_response(200, registry->render(format));
    res.content_type = content_type(format);
    return res;
}

namespace {

// The pattern's handler, not yet awaited: one awaitable in answer()'s coroutine frame, not one per
// pattern (g++ gives each its own slot, and a frame over 1 KiB misses malloc's per-thread cache).
net::awaitable<fanout::reply> handler_of(
    fanout::handler_context& ctx, pattern p, fanout::aggregate_request aggregate
) {
    switch (p) {
        case pattern::channel:
            return fanout::channel(ctx, std::move(aggregate));
        case pattern::context_timeout:
            return fanout::context_timeout(ctx, std::move(aggregate));
        case pattern::errgroup:
            return fanout::errgroup(ctx, std::move(aggregate));
        case pattern::wg:
            break;
    }
    return fanout::wait_group(ctx, std::move(aggregate));
}

}  // namespace

net::awaitable<response> loop_engine::answer(loop_config& cfg, dispatch const& r, fanout::part_sink* parts) {
    try {
        fanout::aggregate_request aggregate{r.timeout};
        aggregate.max_fetch = cfg.opts.max_fetch;
        aggregate.params = r.params;
        aggregate.trace = r.trace;
        aggregate.route = r.plan;
        aggregate.targets = r.targets;
        aggregate.forwarded = r.forwarded;
        aggregate.parts = parts;
        aggregate.cause = r.cause;
        auto reply = co_await handler_of(cfg.ctx, r.plan->pattern, std::move(aggregate));
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
