#include "handlers/request.hpp"

#include "handlers/handlers.hpp"
#include "handlers/route_plan.hpp"
#include "handlers/shape.hpp"
#include "wire/json_text.hpp"

#include <boost/asio/this_coro.hpp>

#include <charconv>

namespace fanout {

namespace net = boost::asio;

unsigned partial_status(std::span<fanout::fetch_result const> results) noexcept {
    bool all_timeouts = true;
    for (auto const& r : results) {
        if (r.ok()) return 200;
        all_timeouts = all_timeouts && r.error->kind == error_kind::timeout;
    }
    return all_timeouts && !results.empty() ? 504 : 502;
}

namespace {

// Service names are restricted to [A-Za-z0-9_.-] when configured: nothing to escape.
void append_name(std::string& out, std::string_view name) {
    out += '"';
    out += name;
    out += '"';
}

void append_millis(std::string& out, clock::duration d) {
    char buf[32];
    double ms = std::chrono::duration<double, std::milli>(d).count();
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, ms, std::chars_format::fixed, 3);
    out.append(buf, ec == std::errc{} ? end : buf);
}

}  // namespace

reply render(
    std::string_view pattern,
    std::span<fanout::service const> services,
    std::span<fanout::fetch_result const> results,
    unsigned status,
    clock::time_point start
) {
    return render(pattern, nullptr, services, results, status, start);
}

reply render(
    std::string_view pattern,
    route_plan const* route,
    std::span<fanout::service const> services,
    std::span<fanout::fetch_result const> results,
    unsigned status,
    clock::time_point start
) {
    reply r;
    r.status = status;
    for (auto const& result : results) r.complete = r.complete && result.ok();
    if (route && route->shape == fanout::shape::merge) {
        r.body = merged(*route, results);
        return r;
    }
    auto const key = [&](std::size_t i) -> std::string_view {
        return route ? std::string_view(route->backends[i].key) : std::string_view(services[i].name);
    };
    std::size_t size = 128;
    for (std::size_t i = 0; i < results.size(); ++i) {
        size += key(i).size() + results[i].body.size() + 8;
        if (!results[i].ok()) size += results[i].error->message.size() + 64;
    }
    r.body.reserve(size);

    auto& out = r.body;
    out += R"({"pattern":")";
    out += pattern;
    if (route && !route->seed) {
        out += R"(","route":)";
        out += wire::json_quote(route->path);
        out += R"(,"results":{)";
    } else {
        out += R"(","results":{)";
    }
    bool first = true;
    for (std::size_t i = 0; i < results.size(); ++i) {
        if (!results[i].ok() && !(route && route->backends[i].fallback)) continue;
        if (!first) out += ',';
        first = false;
        append_name(out, key(i));
        out += ':';
        if (route)
            append_part(out, route->backends[i], results[i]);
        else
            out += results[i].body;  // validated JSON, embedded as it came
    }
    out += R"(},"errors":{)";
    first = true;
    for (std::size_t i = 0; i < results.size(); ++i) {
        if (results[i].ok()) continue;
        if (!first) out += ',';
        first = false;
        append_name(out, key(i));
        out += ':';
        append_error(out, *results[i].error);
    }
    out += R"(},"complete":)";
    out += r.complete ? "true" : "false";
    out += R"(,"elapsed_ms":)";
    append_millis(out, clock::now() - start);
    out += '}';
    return r;
}

namespace {

// A backend whose service's own timeout is sooner than the request's deadline: its fetch is
// bounded by it.
net::awaitable<fanout::fetch_result> fetch_bounded(
    net::awaitable<fanout::fetch_result> fetch, aggregate_request req, clock::time_point deadline
) {
    auto [outcome] = co_await within(deadline, std::move(fetch));
    if (outcome.error == group_error::timeout) co_return timeout_failure(req.start, deadline);
    co_return result_of(std::move(outcome), req);
}

// Reports the fetch's result as soon as it has one, unless the group cancelled it: a result
// made by the group (a timeout at its deadline, a sibling's failure) is known only at its end.
net::awaitable<fanout::fetch_result> reported(
    net::awaitable<fanout::fetch_result> fetch, part_sink* sink, std::size_t backend
) {
    auto result = co_await std::move(fetch);
    auto const cs = co_await net::this_coro::cancellation_state;
    if (cs.cancelled() == net::cancellation_type::none) sink->part(backend, result);
    co_return result;
}

std::string what(std::exception_ptr const& e) {
    try {
        std::rethrow_exception(e);
    } catch (std::exception const& x) {
        return x.what();
    } catch (...) {
        return "unknown exception";
    }
}

}  // namespace

std::vector<net::awaitable<fanout::fetch_result>> fetches(
    fanout::client& client, aggregate_request const& req, bool bounded
) {
    auto services = client.services();
    auto const count = req.route ? req.route->backends.size() : services.size();
    std::vector<net::awaitable<fanout::fetch_result>> out;
    out.reserve(count);
    for (std::size_t b = 0; b < count; ++b) {
        auto const i = req.route ? req.route->backends[b].service : b;
        auto const deadline = service_deadline(services[i], req);
        fanout::fetch_context context{bounded ? std::optional(deadline) : std::nullopt, &req.trace};
        if (b < req.targets.size()) context.target = req.targets[b];
        context.headers = req.forwarded;
        context.cause = req.cause;
        // A request cut by the service's own timeout or max_fetch failed; one cut by the request's
        // deadline, sooner, was cancelled (its caller's choice).
        context.timeout_at = req.start + req.max_fetch;
        if (services[i].timeout)
            context.timeout_at = std::min(*context.timeout_at, req.start + *services[i].timeout);
        // The request's values and headers are copied before fetch() returns: the awaitable
        // outlives neither this call's arguments nor them.
        auto fetch = client.fetch(i, req.params, context);
        // What bounds the fetch besides its pattern's deadline, if anything does: the service's own
        // timeout on a pattern without a deadline, and always max_fetch, so that none waits for ever.
        // On the patterns without a deadline, max_fetch bounds the group with one timer (the
        // handler's, see group_bound()): only a sooner timeout of the service's own needs one here.
        auto bound = req.start + req.max_fetch;
        if (!bounded && services[i].timeout) bound = std::min(bound, req.start + *services[i].timeout);
        if (bounded) bound = std::min(bound, deadline);
        if (bounded ? bound < req.start + req.timeout : bound < req.start + req.max_fetch) {
            aggregate_request times{req.timeout, req.start};
            fetch = fetch_bounded(std::move(fetch), std::move(times), bound);
        }
        if (req.parts) fetch = reported(std::move(fetch), req.parts, b);
        out.push_back(std::move(fetch));
    }
    return out;
}

bool tolerated(aggregate_request const& req, std::size_t backend) noexcept {
    if (!req.route) return false;
    auto const& b = req.route->backends[backend];
    return b.fallback || (!b.required && req.route->pattern == fanout::pattern::errgroup);
}

unsigned partial_status(
    std::span<fanout::fetch_result const> results, aggregate_request const& req
) noexcept {
    if (!req.route) return partial_status(results);
    bool all_timeouts = true;
    for (std::size_t i = 0; i < results.size(); ++i) {
        if (results[i].ok() || req.route->backends[i].fallback) return 200;
        all_timeouts = all_timeouts && results[i].error->kind == error_kind::timeout;
    }
    return all_timeouts && !results.empty() ? 504 : 502;
}

fanout::fetch_result result_of(
    outcome<fanout::fetch_result>&& o, aggregate_request const& req, std::optional<clock::time_point> at
) {
    // A fetch errgroup took as its failure keeps its own error, in its value.
    if (o.ok() || o.error == group_error::failed) return std::move(*o.value);
    if (o.error == group_error::timeout)
        return timeout_failure(req.start, at.value_or(req.start + req.timeout));
    auto const why = o.exception ? what(o.exception) : o.error.message();
    return fanout::make_failure(error_kind::cancelled, "fetch failed: " + why);
}

std::vector<fanout::fetch_result> result_of(
    std::vector<outcome<fanout::fetch_result>>&& outcomes,
    aggregate_request const& req,
    std::optional<clock::time_point> at
) {
    std::vector<fanout::fetch_result> results;
    results.reserve(outcomes.size());
    for (auto& o : outcomes) results.push_back(result_of(std::move(o), req, at));
    return results;
}

fanout::fetch_result timeout_failure(clock::time_point start, clock::time_point deadline) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - start).count();
    auto r = fanout::make_failure(error_kind::timeout, "no answer within " + std::to_string(ms) + " ms");
    r.elapsed = clock::now() - start;
    return r;
}

clock::time_point service_deadline(fanout::service const& svc, aggregate_request const& req) noexcept {
    auto deadline = req.start + req.timeout;
    if (svc.timeout && req.start + *svc.timeout < deadline) deadline = req.start + *svc.timeout;
    return deadline;
}

// Server-Timing (W3C): `key;dur=MS;desc="outcome"` per backend, then `total;dur=MS`. Keys are
// tokens ([A-Za-z0-9_.-]) and outcomes error kinds: nothing to escape.
std::string server_timing(
    route_plan const& route, std::span<fanout::fetch_result const> results, clock::time_point start
) {
    std::string out;
    for (std::size_t i = 0; i < results.size(); ++i) {
        out += route.backends[i].key;
        out += ";dur=";
        append_millis(out, results[i].elapsed);
        out += ";desc=\"";
        out += results[i].ok() ? std::string_view("ok") : fanout::to_string(results[i].error->kind);
        out += "\", ";
    }
    out += "total;dur=";
    append_millis(out, clock::now() - start);
    return out;
}

reply finish(
    handler_context& ctx,
    std::string_view pattern,
    std::span<fanout::fetch_result const> results,
    unsigned status,
    aggregate_request const& req
) {
    auto const services = ctx.client.services();
    if (ctx.observer) {
        for (std::size_t b = 0; b < results.size(); ++b) {
            auto const i = req.route ? req.route->backends[b].service : b;
            ctx.observer->fetched(fetch_event{pattern, i, services[i].name, results[b], req.trace.id()});
        }
    }
    if (req.parts) {
        req.parts->done(results, status);
        reply r;
        r.status = status;
        for (auto const& result : results) r.complete = r.complete && result.ok();
        return r;
    }
    auto r = render(pattern, req.route, services, results, status, req.start);
    if (req.route && req.route->server_timing)
        r.server_timing = server_timing(*req.route, results, req.start);
    return r;
}

}  // namespace fanout
