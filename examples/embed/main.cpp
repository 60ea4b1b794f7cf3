// An application that embeds fanout: one io_context of its own, which runs
//  - its own periodic work (a heartbeat);
//  - its own HTTP server with one route, GET /stock, which asks three warehouses at once with
//    fanout::within: a combinator over an operation that is not HTTP (here a timer stands in for
//    a database or cache query); the warehouse slower than the deadline is left out;
//  - fanout's endpoints mounted in that same server (fanout::aggregator), and fanout's own
//    server beside it, both aggregating that route as their upstream "stock";
// and stops cleanly on SIGINT or SIGTERM.

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <fanout/aggregator.hpp>
#include <fanout/combinators.hpp>
#include <fanout/http_server.hpp>
#include <iostream>
#include <string>
#include <vector>

namespace net = boost::asio;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

namespace {

struct warehouse {
    std::string name;
    std::chrono::milliseconds latency;
    int units;
};

std::vector<warehouse> const warehouses{{"north", 5ms, 12}, {"south", 10ms, 7}, {"far-east", 2s, 40}};

// One warehouse's stock: the stand-in for a query that is not HTTP.
net::awaitable<int> stock_of(warehouse const& w) {
    net::steady_timer reply{co_await net::this_coro::executor, w.latency};
    co_await reply.async_wait(net::use_awaitable);
    co_return w.units;
}

// {"north":12,"south":7,"late":["far-east"]}: every warehouse at once, for 50 ms at most.
net::awaitable<std::string> stock_json() {
    std::vector<net::awaitable<int>> queries;
    for (auto const& w : warehouses) queries.push_back(stock_of(w));
    auto outcomes = co_await fanout::within(50ms, std::move(queries));
    std::string body = "{", late;
    for (std::size_t i = 0; i < outcomes.size(); ++i) {
        auto const quoted = '"' + warehouses[i].name + '"';
        if (outcomes[i].ok())
            body += quoted + ':' + std::to_string(*outcomes[i].value) + ',';
        else
            late += (late.empty() ? "" : ",") + quoted;
    }
    co_return body + "\"late\":[" + late + "]}";
}

// The application's own server: GET /stock, and fanout's endpoints under /api/aggregate/; one
// request per connection.
net::awaitable<void> serve(tcp::socket socket, fanout::aggregator& mounted) {
    boost::beast::flat_buffer buffer;
    http::request<http::empty_body> req;
    auto [ec, n] = co_await http::async_read(socket, buffer, req, net::as_tuple(net::use_awaitable));
    if (ec) co_return;
    if (req.target().starts_with("/api/aggregate/")) {
        auto res = co_await mounted.handle(req);
        res.keep_alive(false);
        co_await http::async_write(socket, res, net::as_tuple(net::use_awaitable));
        co_return;
    }
    http::response<http::string_body> res{http::status::ok, req.version()};
    res.set(http::field::content_type, "application/json");
    if (req.target() == "/stock")
        res.body() = co_await stock_json();
    else
        res.result(http::status::not_found);
    res.keep_alive(false);
    res.prepare_payload();
    co_await http::async_write(socket, res, net::as_tuple(net::use_awaitable));
}

net::awaitable<void> accept_loop(tcp::acceptor& acceptor, fanout::aggregator& mounted) {
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(net::as_tuple(net::use_awaitable));
        if (ec) co_return;  // closed: the application is stopping
        net::co_spawn(acceptor.get_executor(), serve(std::move(socket), mounted), net::detached);
    }
}

net::awaitable<void> heartbeat(net::steady_timer& timer, long& beats) {
    for (;;) {
        timer.expires_after(100ms);
        auto [ec] = co_await timer.async_wait(net::as_tuple(net::use_awaitable));
        if (ec) co_return;
        ++beats;
    }
}

std::string url_of(tcp::endpoint const& e) {
    return "http://" + e.address().to_string() + ":" + std::to_string(e.port());
}

}  // namespace

int main() {
    net::io_context ioc{1};

    long beats = 0;
    net::steady_timer beat{ioc};
    net::co_spawn(ioc, heartbeat(beat, beats), net::detached);

    tcp::acceptor own{ioc, {net::ip::make_address("127.0.0.1"), 0}};

    fanout::options opts;
    opts.listen_port = 0;  // a free port; loopback by default
    opts.log_level = "warn";
    // fanout's log events, rendered the application's way.
    opts.on_event = [](fanout::log_event const& e) { std::cerr << "app: fanout " << e.json << "\n"; };
    opts.upstreams.push_back(fanout::make_service("stock", url_of(own.local_endpoint()) + "/stock"));
    fanout::aggregator mounted{ioc.get_executor(), opts};
    net::co_spawn(ioc, accept_loop(own, mounted), net::detached);
    fanout::http_server aggregator{ioc.get_executor(), opts};

    net::signal_set signals{ioc, SIGINT, SIGTERM};
    signals.async_wait([&](boost::system::error_code ec, int) {
        if (!ec) aggregator.shutdown(1s);  // answers what reached it, then its run completes
    });
    aggregator.async_run([&](boost::system::error_code ec) {
        if (ec) std::cerr << "fanout stopped: " << ec.message() << "\n";
        // The rest of the application stops with it, and ioc.run() returns.
        signals.cancel();
        own.close();
        beat.cancel();
        mounted.close_idle();
    });

    std::cout << "stock on " << url_of(own.local_endpoint()) << "/stock" << std::endl;
    std::cout << "fanout on " << url_of(aggregator.local_endpoint()) << std::endl;
    ioc.run();
    std::cout << "stopped after " << beats << " heartbeats" << std::endl;
}
