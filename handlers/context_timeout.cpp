#include "handlers/handlers.hpp"

namespace fanout {

boost::asio::awaitable<reply> context_timeout(handler_context& ctx, aggregate_request req) {
    // The fetches race one shared deadline; the ones still running then are cancelled and
    // reported as timeouts.
    auto outcomes = co_await within(req.start + req.timeout, fetches(ctx.client, req, true));
    auto results = result_of(std::move(outcomes), req);
    co_return finish(ctx, "context-timeout", results, partial_status(results, req), req);
}

}  // namespace fanout
