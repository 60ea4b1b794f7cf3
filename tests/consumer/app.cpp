// An application embedding fanout: its own io_context and its own upstream services (a few lines of
// Asio answering JSON, and one answering 500), fanout's server beside them on the same loop, one
// of fanout's combinators over timers of its own, and fanout's client used through four
// completion tokens. A client thread asks fanout for the aggregate a few times, then the
// application stops the server. Exit 0 if every answer was the merged JSON, and the 500 said
// the same through every token.
#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>

#include <atomic>
#include <fanout/client.hpp>
#include <fanout/combinators.hpp>
#include <fanout/http_server.hpp>
#include <fanout/options.hpp>
#include <fanout/service.hpp>
#include <iostream>
#include <string>
#include <thread>
#include <type_traits>

namespace net = boost::asio;
using tcp = net::ip::tcp;

std::size_t run_application_loop(net::io_context& ioc);

namespace {

// Code written for fanout 0.1 still compiles.
static_assert(std::is_same_v<fanout::upstream::client, fanout::client>);

net::awaitable<void> answer_json(tcp::socket sock, bool broken) {
    std::string const body = broken ? R"({"error":"broken"})" : R"({"hello":"world"})";
    std::string const answer =
        std::string(broken ? "HTTP/1.1 500 Internal Server Error" : "HTTP/1.1 200 OK") +
        "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" +
        body;
    std::string in;
    try {
        for (;;) {
            auto n =
                co_await net::async_read_until(sock, net::dynamic_buffer(in), "\r\n\r\n", net::use_awaitable);
            in.erase(0, n);
            co_await net::async_write(sock, net::buffer(answer), net::use_awaitable);
        }
    } catch (std::exception const&) {
        // the client (fanout's pool) closed the connection
    }
}

net::awaitable<void> serve_json(tcp::acceptor& acceptor, bool broken = false) {
    for (;;) {
        auto sock = co_await acceptor.async_accept(net::use_awaitable);
        net::co_spawn(acceptor.get_executor(), answer_json(std::move(sock), broken), net::detached);
    }
}

bool ask(std::uint16_t port) {
    net::io_context ioc;
    tcp::socket sock{ioc};
    sock.connect({net::ip::make_address("127.0.0.1"), port});
    std::string const request = "GET /api/aggregate/wg HTTP/1.1\r\nHost: app\r\nConnection: close\r\n\r\n";
    net::write(sock, net::buffer(request));
    std::string answer;
    boost::system::error_code ec;
    net::read(sock, net::dynamic_buffer(answer), ec);  // to the end: Connection: close
    bool ok = answer.rfind("HTTP/1.1 200", 0) == 0 &&
              answer.find(R"("hello":{"hello":"world"})") != std::string::npos;
    if (!ok) std::cerr << "consumer: unexpected answer:\n" << answer << "\n";
    return ok;
}

// A combinator over the application's own operations (timers), compiled with its own settings.
net::awaitable<bool> combinator_works() {
    net::steady_timer quick{co_await net::this_coro::executor, std::chrono::milliseconds(1)};
    net::steady_timer hung{co_await net::this_coro::executor, std::chrono::hours(1)};
    auto [a, b] = co_await fanout::within(
        std::chrono::milliseconds(50), quick.async_wait(net::use_awaitable),
        hung.async_wait(net::use_awaitable)
    );
    co_return a.ok() && b.error == fanout::group_error::timeout;
}

// What a failed fetch says, to compare across tokens.
std::string failure_of(fanout::fetch_result const& r) {
    if (r.ok()) return "ok";
    return std::string(fanout::to_string(r.error->kind)) + " " + std::to_string(r.error->status) + " " +
           r.error->message;
}

}  // namespace

int main() {
    net::io_context ioc{1};
    tcp::acceptor upstream{ioc, {net::ip::make_address("127.0.0.1"), 0}};
    net::co_spawn(ioc, serve_json(upstream), net::detached);

    fanout::options opts;
    opts.listen_port = 0;
    opts.log_level = "warn";
    opts.upstreams.push_back(fanout::make_service(
        "hello", "http://127.0.0.1:" + std::to_string(upstream.local_endpoint().port()) + "/hello"
    ));
    fanout::http_server server{ioc.get_executor(), opts};
    auto const port = server.local_endpoint().port();
    server.async_run([&](boost::system::error_code e) {
        if (e) std::cerr << "consumer: the server failed\n";
        upstream.close();  // the server is done: so is the application
    });

    bool combined = false;
    net::co_spawn(ioc, combinator_works(), [&](std::exception_ptr e, bool ok) { combined = !e && ok; });

    // One fetch of a service answering 500, through each kind of token: the same result each time.
    tcp::acceptor broken{ioc, {net::ip::make_address("127.0.0.1"), 0}};
    net::co_spawn(ioc, serve_json(broken, true), net::detached);
    fanout::client client{
        ioc.get_executor(),
        {fanout::make_service(
            "broken", "http://127.0.0.1:" + std::to_string(broken.local_endpoint().port()) + "/"
        )},
        {}};
    std::vector<std::string> seen;
    client.async_fetch(0, [&](fanout::fetch_result r) { seen.push_back("callback: " + failure_of(r)); });
    auto future = client.async_fetch(0, net::use_future);
    net::steady_timer tick{ioc, std::chrono::milliseconds(1)};
    net::co_spawn(
        ioc,
        [&]() -> net::awaitable<void> {
            auto r = co_await client.async_fetch(0, net::use_awaitable);
            seen.push_back("use_awaitable: " + failure_of(r));
            auto [ticked, fetched] = co_await fanout::within(
                std::chrono::seconds(5), tick.async_wait(net::deferred), client.async_fetch(0, net::deferred)
            );
            seen.push_back("deferred under within: " + (fetched.value ? failure_of(*fetched.value) : "none"));
            if (!ticked.ok()) seen.push_back("the timer under within failed");
            broken.close();
            client.close_idle();
        },
        net::detached
    );

    std::atomic<int> good{0};
    std::thread client_thread{[&] {
        for (int i = 0; i < 20; ++i) good += ask(port) ? 1 : 0;
        server.shutdown(std::chrono::milliseconds(1000));
    }};
    run_application_loop(ioc);
    client_thread.join();
    auto const expected = failure_of(future.get());
    seen.push_back("use_future: " + expected);
    bool same = seen.size() == 4;
    for (auto const& s : seen) {
        std::cout << "consumer: 500 through " << s << "\n";
        same = same && s.ends_with(expected) && s.find("status 500") != std::string::npos;
    }
    std::cout << "consumer: " << good << " of 20 answers merged; within(): " << (combined ? "ok" : "FAILED")
              << "; a 500 through four tokens: " << (same ? "the same" : "NOT THE SAME") << "\n";
    return good == 20 && combined && same ? 0 : 1;
}
