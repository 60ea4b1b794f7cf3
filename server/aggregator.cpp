#include "combinators/launch.hpp"
#include "server/log.hpp"
#include "server/loop_engine.hpp"
#include "server/router.hpp"
#include "server/server_error.hpp"
#include "server/stream.hpp"

#include <fanout/aggregator.hpp>

namespace fanout {

namespace http = boost::beast::http;

struct aggregator::impl {
    impl(
        executor_type executor, options const& opts, std::shared_ptr<metrics_registry> reg, std::size_t shard
    )
        : ex(std::move(executor)), engine(ex, opts, std::move(reg), shard) {}

    executor_type ex;
    loop_engine engine;
};

aggregator::aggregator(
    executor_type ex, options opts, std::shared_ptr<metrics_registry> registry, std::size_t shard
)
    : impl_(std::make_unique<impl>(std::move(ex), std::move(opts), std::move(registry), shard)) {
}

aggregator::~aggregator() = default;

aggregator::executor_type aggregator::get_executor() const noexcept {
    return impl_->ex;
}

void aggregator::initiate_handle(
    boost::asio::any_completion_handler<void(boost::system::error_code, response_type)> handler,
    boost::asio::awaitable<response_type> op
) {
    detail::launch(
        impl_->ex, std::move(op), std::move(handler),
        [](auto h, std::exception_ptr e, response_type r) {
            std::move(h)(code_of_exception(e), std::move(r));
        }
    );
}

void aggregator::take(request_fields& fields, std::string_view name, std::string_view value) const {
    auto const& cfg = *impl_->engine.config();
    take_field(fields, cfg.opts.deadline_header, name, value, cfg.routes.forwarded_names());
}

boost::asio::awaitable<aggregator::response_type> aggregator::handle(
    http::verb method, std::string target, unsigned version, request_fields fields
) {
    auto const start = std::chrono::steady_clock::now();
    auto const cfg = impl_->engine.config();  // this request's, whatever reloads come meanwhile
    auto r = match(method, target, cfg->opts, cfg->routes, fields);
    response res;
    if (r.answer) {
        res = std::move(*r.answer);
    } else if (r.target == endpoint::healthz) {
        res = json_response(200, R"({"status":"ok"})");
    } else if (r.target == endpoint::metrics) {
        res = impl_->engine.metrics_page(fields.accept);
    } else if (r.plan->stream) {
        // Here the whole answer is returned at once: its lines, in the order they completed.
        ndjson_parts parts{impl_->ex, *r.plan, start};
        res = co_await impl_->engine.answer(*cfg, r, &parts);
        res.content_type = "application/x-ndjson";
        res.complete.reset();
        res.status = 200;
        res.body.clear();
        while (!parts.ended()) res.body += co_await parts.next();
    } else {
        res = co_await impl_->engine.answer(*cfg, r);
    }
    impl_->engine.metrics.count_request(
        r.target, cfg->series_of(r.plan), res.status, std::chrono::steady_clock::now() - start, r.trace.id()
    );

    response_type out{static_cast<http::status>(res.status), version};
    out.set(http::field::content_type, res.content_type);
    if (res.complete) out.set("X-Aggregate-Complete", *res.complete ? "true" : "false");
    if (res.allow_get_head) out.set(http::field::allow, "GET, HEAD");
    if (!res.server_timing.empty()) out.set("Server-Timing", res.server_timing);
    out.body() = std::move(res.body);
    out.prepare_payload();
    if (method == http::verb::head) out.body().clear();  // the length stays that of the GET
    co_return out;
}

metrics_registry& aggregator::metrics() const noexcept {
    return *impl_->engine.registry;
}

void aggregator::close_idle() noexcept {
    impl_->engine.config()->client.close_idle();
}

void aggregator::reload(options opts) {
    impl_->engine.install(impl_->engine.prepare(std::move(opts)));
}

}  // namespace fanout
