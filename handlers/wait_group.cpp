#include "handlers/handlers.hpp"

namespace fanout::handlers {

boost::asio::awaitable<reply> wait_group(context& ctx, aggregate_request req) {
    // fetch() returns failures as values, so wait_all waits for every service, like WaitGroup.Wait().
    auto outcomes = co_await wait_all(fetches(ctx.client, req, false));
    auto results = settled(std::move(outcomes), req);
    co_return finish(ctx, "wg", results, partial_status(results, req), req);
}

}  // namespace fanout::handlers
