#include "handlers/handlers.hpp"

#include <algorithm>

namespace fanout::handlers {

using upstream::error_kind;

boost::asio::awaitable<reply> errgroup(context& ctx, aggregate_request req) {
    auto const failed = [](upstream::fetch_result const& r) { return !r.ok(); };
    auto group = co_await fail_fast(req.start + req.timeout, fetches(ctx.client, req, true), failed);
    auto results = settled(std::move(group.outcomes), req);

    unsigned status = 200;
    if (group.first_failure) {
        auto const& cause = results[*group.first_failure];
        status = cause.error->kind == error_kind::timeout ? 504 : 502;
        auto const& name = ctx.client.services()[*group.first_failure].name;
        for (auto& r : results)
            if (!r.ok() && r.error->kind == error_kind::cancelled)
                r.error->message = "cancelled: " + name + " failed";
    } else if (std::any_of(results.begin(), results.end(), [](auto const& r) {
                   return !r.ok() && r.error->kind == error_kind::timeout;
               })) {
        status = 504;  // the deadline came first
    } else if (!std::all_of(results.begin(), results.end(), [](auto const& r) { return r.ok(); })) {
        status = 502;  // cancelled from outside (client gone, shutdown) before anything failed
    }
    co_return finish(ctx, "errgroup", results, status, req);
}

}  // namespace fanout::handlers
