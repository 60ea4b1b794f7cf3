// Routes declared in code rather than in a config file: the same route_config the file is read
// into. Shown whole in docs/routes.md (In code); a test checks that the copy there is this file.
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

#include <fanout/http_server.hpp>

int main() {
    using namespace fanout;
    boost::asio::io_context ioc{1};
    options opts;
    opts.listen_port = 0;
    opts.upstreams.push_back(fanout::parse_service("users=http://127.0.0.1:9101/users"));
    opts.upstreams.push_back(fanout::parse_service("orders=http://127.0.0.1:9102/orders"));
    opts.routes.push_back({
        .path = "/api/users/{id}/overview",
        .pattern = pattern::errgroup,
        .backends =
            {{.service = "users", .path = "/users/{id}", .key = "profile", .allow = {"users"}},
             {.service = "orders", .path = "/orders?user={id}", .fallback = R"({"orders":[]})"}},
        .forward_headers = {"Authorization"},
    });
    // Checked here as a config file is: a mistake throws std::invalid_argument naming the key.
    http_server server{ioc.get_executor(), opts};
    server.async_run(boost::asio::detached);
    ioc.run();
}
