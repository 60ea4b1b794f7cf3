#pragma once

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/verb.hpp>

#include <fanout/detail/token.hpp>
#include <fanout/metrics.hpp>
#include <fanout/old_namespaces.hpp>
#include <fanout/options.hpp>
#include <fanout/request_fields.hpp>
#include <fanout/server_error.hpp>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>

namespace fanout {

// fanout's endpoints without its HTTP server, mounted in an application's own: hand it a
// request, get the complete response. It answers what fanout's server would: the
// /api/aggregate/* endpoints (with ?timeout_ms= and the upstream targets' placeholders from the
// query), /healthz, /metrics, and 400/404/405 for the rest. Like http_server it runs on the
// executor it is given, owns an upstream client and pool, and is not thread-safe: one per
// single-threaded loop (or strand), sharing a metrics_registry. It must outlive its operations.
class aggregator {
  public:
    using executor_type = boost::asio::any_io_executor;
    using response_type = boost::beast::http::response<boost::beast::http::string_body>;

    // opts: the upstreams, timeouts, limits, logger or on_event; the listening settings are unused.
    aggregator(
        executor_type ex,
        options opts,
        std::shared_ptr<metrics_registry> registry = nullptr,
        std::size_t shard = 0
    );
    aggregator(aggregator const&) = delete;
    aggregator& operator=(aggregator const&) = delete;
    ~aggregator();

    executor_type get_executor() const noexcept;

    // The response to `method target`: status, Content-Type, X-Aggregate-Complete (aggregate
    // answers), Allow (405), Content-Length and body; for HEAD the length without the body.
    // `fields`: the request's deadline header and trace context, if any.
    // Cancelling it (terminal) cancels the fetches, as a client leaving does in fanout's server.
    boost::asio::awaitable<response_type> handle(
        boost::beast::http::verb method, std::string target, unsigned version = 11, request_fields fields = {}
    );

    template <class Body, class Fields>
    boost::asio::awaitable<response_type> handle(boost::beast::http::request<Body, Fields> const& req) {
        return handle(req.method(), std::string(req.target()), req.version(), fields_of(req));
    }

    // handle() as an Asio initiating function, for any completion token (default: `deferred`).
    // Completion signature: void(boost::system::error_code, response_type); the code is empty
    // unless handle() threw (a bug or an infrastructure failure, not an upstream's failure,
    // which is in the response): a system error's code, or server_error::internal. Executor: the
    // request runs on the aggregator's; the handler runs on its associated executor, by default
    // the aggregator's. Per-operation cancellation: terminal, as handle(): the fetches are
    // cancelled and the response says so. The arguments are copied before this returns; the
    // aggregator must outlive the operation. Thread safety: as the aggregator's.
    template <class CompletionToken = detail::default_token_t<executor_type>>
    auto async_handle(
        boost::beast::http::verb method,
        std::string target,
        unsigned version,
        request_fields fields,
        CompletionToken&& token = {}
    ) {
        return boost::asio::async_initiate<CompletionToken, void(boost::system::error_code, response_type)>(
            [](boost::asio::any_completion_handler<void(boost::system::error_code, response_type)> h,
               aggregator* self, boost::asio::awaitable<response_type> op) {
                self->initiate_handle(std::move(h), std::move(op));
            },
            token, this, handle(method, std::move(target), version, std::move(fields))
        );
    }

    // Without the request's header fields: no deadline header, no trace context.
    template <class CompletionToken = detail::default_token_t<executor_type>>
    requires(!std::is_convertible_v<CompletionToken, request_fields>) auto async_handle(
        boost::beast::http::verb method, std::string target, unsigned version, CompletionToken&& token = {}
    ) {
        return async_handle(method, std::move(target), version, {}, std::forward<CompletionToken>(token));
    }

    // The fields read from the request, as handle(req) does.
    template <class Body, class Fields, class CompletionToken = detail::default_token_t<executor_type>>
    auto async_handle(boost::beast::http::request<Body, Fields> const& req, CompletionToken&& token = {}) {
        return async_handle(
            req.method(), std::string(req.target()), req.version(), fields_of(req),
            std::forward<CompletionToken>(token)
        );
    }

    metrics_registry& metrics() const noexcept;
    void close_idle() noexcept;  // the idle pooled upstream connections (e.g. at shutdown)

    // Answers the requests handle() starts from now on with `opts` (upstreams, routes, limits,
    // timeouts; its listening settings, logger and on_event are not used), as http_server::
    // async_reload does; those already being handled finish with the configuration they started
    // with. Call it on the aggregator's executor (not thread-safe, as the rest). Throws what the
    // constructor would (std::invalid_argument naming the route or setting; a TLS file that cannot
    // be loaded), and then nothing has changed. New host names are resolved in the background: a
    // fetch to one before its first answer fails as error_kind::connect.
    void reload(options opts);

  private:
    void initiate_handle(
        boost::asio::any_completion_handler<void(boost::system::error_code, response_type)> handler,
        boost::asio::awaitable<response_type> op
    );
    void take(request_fields& fields, std::string_view name, std::string_view value) const;

    template <class Body, class Fields>
    request_fields fields_of(boost::beast::http::request<Body, Fields> const& req) const {
        request_fields fields;
        for (auto const& f : req)
            take(
                fields, {f.name_string().data(), f.name_string().size()}, {f.value().data(), f.value().size()}
            );
        return fields;
    }

    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace fanout
