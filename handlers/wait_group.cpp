#include "handlers/handlers.hpp"

namespace fanout {

boost::asio::awaitable<reply> wait_group(handler_context& ctx, aggregate_request req) {
    // fetch() returns failures as values, so wait_all waits for every service, like WaitGroup.Wait().
    // max_fetch, the safety net, is one timer for the group (wait_all's join raced against it).
    auto const bound = req.start + req.max_fetch;
    auto outcomes = co_await within(bound, fetches(ctx.client, req, false));
    auto results = result_of(std::move(outcomes), req, bound);
    co_return finish(ctx, "wg", results, partial_status(results, req), req);
}

}  // namespace fanout
