#include "server/router.hpp"

#include "handlers/handlers.hpp"

#include <boost/beast/http/field.hpp>
#include <boost/json/serialize.hpp>
#include <boost/url/parse.hpp>

#include <array>
#include <charconv>

namespace fanout::server {

namespace net = boost::asio;
namespace http = boost::beast::http;
namespace urls = boost::urls;

namespace {

using handler_fn = net::awaitable<handlers::reply> (*)(handlers::context&, handlers::aggregate_request);

struct route_entry {
    std::string_view path;
    handler_fn handler;
};

constexpr std::array<route_entry, 4> routes{{
    {"/api/aggregate/wg", &handlers::wait_group},
    {"/api/aggregate/channel", &handlers::channel},
    {"/api/aggregate/channel-with-context-timeout", &handlers::context_timeout},
    {"/api/aggregate/errgroup", &handlers::errgroup},
}};

response json_response(unsigned status, std::string body) {
    response res{static_cast<http::status>(status), 11};
    res.set(http::field::server, "fanout/" FANOUT_VERSION);
    res.set(http::field::content_type, "application/json");
    res.set(http::field::cache_control, "no-store");
    res.body() = std::move(body);
    return res;
}

}  // namespace

std::variant<std::chrono::milliseconds, std::string> parse_timeout(
    std::optional<std::string_view> param,
    std::chrono::milliseconds default_timeout,
    std::chrono::milliseconds max_timeout
) {
    if (!param) return default_timeout;
    auto s = *param;
    std::int64_t value = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
    if (s.empty() || s.front() == '-' || s.front() == '+' || end != s.data() + s.size() ||
        (ec != std::errc{} && ec != std::errc::result_out_of_range) || (ec == std::errc{} && value <= 0))
        return std::string("timeout_ms must be a positive integer (milliseconds)");
    if (ec == std::errc::result_out_of_range || value > max_timeout.count()) return max_timeout;
    return std::chrono::milliseconds(value);
}

response error_response(unsigned status, std::string_view message) {
    return json_response(status, R"({"error":)" + boost::json::serialize(message) + "}");
}

net::awaitable<response> route(handlers::context& ctx, options const& opts, request const& req) {
    auto target = urls::parse_origin_form(req.target());
    if (!target) co_return error_response(400, "malformed request target");

    auto path = target->encoded_path();
    route_entry const* entry = nullptr;
    for (auto const& r : routes)
        if (r.path == path) entry = &r;
    if (!entry) co_return error_response(404, "no such endpoint: " + std::string(path));
    if (req.method() != http::verb::get) {
        auto res = error_response(405, "method not allowed; use GET");
        res.set(http::field::allow, "GET");
        co_return res;
    }

    std::optional<std::string_view> timeout_param;
    auto params = target->encoded_params();
    if (auto it = params.find("timeout_ms"); it != params.end()) timeout_param = (*it).value;
    auto timeout = parse_timeout(timeout_param, opts.timeout, opts.max_timeout);
    if (auto* message = std::get_if<std::string>(&timeout)) co_return error_response(400, *message);

    handlers::aggregate_request aggregate{std::get<std::chrono::milliseconds>(timeout)};
    auto reply = co_await entry->handler(ctx, aggregate);
    auto res = json_response(reply.status, std::move(reply.body));
    res.set("X-Aggregate-Complete", reply.complete ? "true" : "false");
    co_return res;
}

}  // namespace fanout::server
