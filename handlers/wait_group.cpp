#include "handlers/handlers.hpp"

namespace fanout::handlers {

namespace net = boost::asio;

net::awaitable<reply> wait_group(context& ctx, aggregate_request req) {
    auto services = ctx.client.services();
    std::vector<upstream::fetch_result> results(services.size());
    std::vector<net::awaitable<void>> branches;
    branches.reserve(services.size());
    for (std::size_t i = 0; i < services.size(); ++i) branches.push_back(ctx.client.fetch_to(i, results[i]));
    // fetch() returns failures as values, so `&&` waits for every service, like WaitGroup.Wait().
    co_await join_all(std::move(branches));
    co_return finish(ctx, "wg", results, partial_status(results), req.start);
}

}  // namespace fanout::handlers
