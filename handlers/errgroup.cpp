#include "handlers/handlers.hpp"
#include "handlers/route_plan.hpp"

#include <algorithm>

namespace fanout {

boost::asio::awaitable<reply> errgroup(handler_context& ctx, aggregate_request req) {
    fanout::cancel_cause own;
    if (!req.cause) req.cause = &own;
    // A backend with a fallback, or not required, fails without failing the group. A failure of
    // the fetch's own cancels the others, which then know why; a cancellation follows from
    // another cause, already said.
    auto const failed = [&req](std::size_t backend, fanout::fetch_result const& r) {
        if (r.ok() || tolerated(req, backend)) return false;
        if (r.error->kind != error_kind::cancelled) req.cause->set(fanout::cancel_reason::sibling_failed);
        return true;
    };
    auto group = co_await fail_fast(req.start + req.timeout, fetches(ctx.client, req, true), failed);
    auto results = result_of(std::move(group.outcomes), req);
    auto const counts = [&](std::size_t i) { return !results[i].ok() && !tolerated(req, i); };

    unsigned status = 200;
    bool timed_out = false, failed_any = false;
    for (std::size_t i = 0; i < results.size(); ++i) {
        if (!counts(i)) continue;
        failed_any = true;
        timed_out = timed_out || results[i].error->kind == error_kind::timeout;
    }
    if (group.first_failure) {
        auto const& cause = *results[*group.first_failure].error;
        status = cause.kind == error_kind::timeout ? 504 : 502;
        // A route passes an upstream's 4xx on: a missing user stays a 404.
        if (req.route && !req.route->seed && cause.kind == error_kind::status && cause.status >= 400 &&
            cause.status < 500)
            status = cause.status;
        auto const& name = req.route ? req.route->backends[*group.first_failure].key
                                     : ctx.client.services()[*group.first_failure].name;
        for (auto& r : results)
            if (!r.ok() && r.error->kind == error_kind::cancelled)
                r.error->message = "cancelled: " + name + " failed";
    } else if (timed_out) {
        status = 504;  // the deadline came first
    } else if (failed_any) {
        status = 502;  // cancelled from outside (client gone, shutdown) before anything failed
    }
    co_return finish(ctx, "errgroup", results, status, req);
}

}  // namespace fanout
