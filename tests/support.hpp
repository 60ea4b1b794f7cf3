#pragma once

#include "sim/simulator.hpp"

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/json/value.hpp>

#include <atomic>
#include <chrono>
#include <fanout/http_server.hpp>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace fanout::test {

using namespace std::chrono_literals;
using response = boost::beast::http::response<boost::beast::http::string_body>;

// Simulated upstreams and fanout on event loops run by background threads: one loop per server,
// FANOUT_TEST_THREADS of them (default 1; CI runs the suite with 2 under TSan), the simulator on
// the first. Teardown is graceful: the servers are cancelled and must drain.
class harness {
  public:
    // The server aggregates the simulated services, in order, then `extra` (e.g. unreachable ones).
    // Services in opts.upstreams only lend their settings (timeout) to the simulated ones of that name.
    explicit harness(
        std::vector<fanout::sim_service> services,
        fanout::options opts = {},
        std::vector<fanout::service> extra = {}
    );
    ~harness();

    std::uint16_t port() const;
    std::size_t threads() const { return loops_.size(); }
    fanout::http_server& server(std::size_t i = 0) { return *servers_[i]; }
    fanout::sim_counters const& counters(std::string_view service) const;

    // Runs f on loop i and returns its result: the loops' state is not thread-safe.
    template <class F>
    auto on_loop(std::size_t i, F f) {
        std::packaged_task<decltype(f())()> task{std::move(f)};
        auto result = task.get_future();
        // A lambda, not the task: where <boost/asio.hpp> is included, a packaged_task is a completion token.
        boost::asio::post(*loops_[i], [&task] { task(); });
        return result.get();
    }

    fanout::pool_stats upstream_stats();   // summed over the loops
    std::size_t channel_producers_live();  // summed over the loops
    // Blocks until every server's run() has completed, or the timeout passes; true if they did.
    bool wait_stopped(std::chrono::milliseconds timeout = 10s);

  private:
    std::vector<std::unique_ptr<boost::asio::io_context>> loops_;
    // Keep every loop running after its server has stopped, so that on_loop() still works.
    std::vector<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
    std::unique_ptr<fanout::simulator> sim_;
    std::vector<std::unique_ptr<fanout::http_server>> servers_;
    std::atomic<std::size_t> running_{0};
    std::promise<void> all_stopped_;
    std::shared_future<void> stopped_;
    std::vector<std::thread> threads_;
};

unsigned test_threads();

// Simulated upstreams alone, on a background thread (for fanout run as a separate process).
class sim_runner {
  public:
    explicit sim_runner(std::vector<fanout::sim_service> services);
    ~sim_runner();
    std::string upstream_flag(std::size_t i) const;  // NAME=URL, for --upstream
    fanout::sim_counters const& counters(std::size_t i) const { return sim_.counters(i); }
    std::uint16_t port(std::size_t i) const { return sim_.port(i); }

  private:
    boost::asio::io_context ioc_{1};
    fanout::simulator sim_;
    std::thread thread_;
};

// A fetch of the client's first service given up after `limit`, as the deadline endpoints do:
// empty when it was.
boost::asio::awaitable<std::optional<fanout::fetch_result>> fetch_within(
    fanout::client& c, std::chrono::milliseconds limit
);

// GET target and return the raw answer (any content type), or nullopt.
std::optional<response> fetch(
    std::uint16_t port, std::string_view target, std::chrono::milliseconds timeout = 10s
);

// GET /metrics, which must answer 200: its body.
std::string scrape(std::uint16_t port);

// The metrics page once every series reads its value, or the last one scraped after 3 s. A request
// is counted once its answer is sent, so a client that has read it can scrape before the count.
std::string scrape_when(std::uint16_t port, std::vector<std::pair<std::string, double>> const& expected);

// Two aggregate endpoints' paths, for the tests that name them.
inline std::string const wg = "/api/aggregate/wg";
inline std::string const context_timeout = "/api/aggregate/channel-with-context-timeout";

// The value of one sample in a Prometheus exposition, e.g. metric(text, R"(fanout_x{a="b"})"); -1 if absent.
double metric(std::string const& exposition, std::string const& series);

fanout::sim_service sim(
    std::string name,
    fanout::sim_behaviour b = fanout::sim_behaviour::ok,
    std::chrono::milliseconds latency = 0ms
);

// Begins a graceful shutdown of every server; with `wait`, returns once each loop has begun it
// (shutdown() posts to the server's loop, and a task posted after it waits for it).
void shutdown_all(harness& h, std::chrono::milliseconds grace, bool wait = true);

// True once nothing accepts connections on the port any more (the listeners are closed).
bool refuses_connections(std::uint16_t port);

// A port on loopback where nothing listens.
std::uint16_t closed_port();

// A blocking HTTP client with a timeout on every read, for driving the server from a test.
class blocking_client {
  public:
    explicit blocking_client(std::uint16_t port);

    void send(std::string_view raw);
    void send_get(std::string_view target, bool keep_alive = true);
    // nullopt: nothing complete arrived in time. `to_head`: the answer to a HEAD request (no body).
    std::optional<response> read(std::chrono::milliseconds timeout = 10s, bool to_head = false);
    // True when the server closed the connection (EOF) within the timeout.
    bool closed_by_server(std::chrono::milliseconds timeout = 5s);
    void close();

  private:
    boost::asio::io_context ioc_;
    boost::beast::tcp_stream stream_;
    boost::beast::flat_buffer buffer_;
};

struct aggregate_answer {
    unsigned status = 0;
    std::string complete_header;
    boost::json::value body;
    std::chrono::milliseconds took{};
};

// A request header for get().
struct header {
    std::string name;
    std::string value;
};

// GET target on a fresh connection and parse the JSON answer; fails the test if none arrives in time.
aggregate_answer get(
    std::uint16_t port,
    std::string_view target,
    std::chrono::milliseconds timeout = 10s,
    std::vector<header> const& headers = {}
);

// An upstream answering {"target":"<the request target it got>","headers":{"<name, lower
// case>":"<value>",...}}, on a thread of its own, with the status it is told (200 at first).
// A target starting "/sleep/MS" is answered after MS milliseconds, "/status/NNN" with status NNN,
// "/array" with the body [1,2,3].
class echo_upstream {
  public:
    struct state {
        std::atomic<unsigned> status{200};
        std::atomic<unsigned> hang_next{0};         // the next requests read get no answer
        std::atomic<unsigned> slow_next{0};         // the next requests read are answered after 1 s
        std::atomic<unsigned> drop_next{0};         // the next connections accepted are closed unread
        std::atomic<std::uint64_t> connections{0};  // accepted
        std::atomic<std::uint64_t> requests{0};     // read
        std::atomic<std::uint64_t> abandoned{0};    // unanswered requests whose connection the client closed
        std::atomic<std::uint64_t> closed{0};       // connections the client closed between two requests
    };

    echo_upstream();
    ~echo_upstream();
    std::string url(std::string_view target) const;
    state& counters() { return state_; }
    void answer_status(unsigned status) { state_.status = status; }

  private:
    state state_;
    boost::asio::io_context ioc_;
    boost::asio::ip::tcp::acceptor acceptor_;
    std::thread thread_;
};

// The error kind of `service` in an aggregate answer, "ok" when it has none.
std::string kind_of(aggregate_answer const& a, std::string_view service);

// What the echo upstream named `service` saw, from the aggregate answer: its target, one header ("" if
// absent).
std::string echoed_target(aggregate_answer const& a, std::string_view service = "echo");
std::string echoed_header(
    aggregate_answer const& a, std::string_view name, std::string_view service = "echo"
);

// Log lines as the application receives them (options::on_event), from the server's threads.
struct captured_events {
    std::mutex m;
    std::vector<std::string> lines;

    void attach(fanout::options& o, std::string level = "debug") {
        o.log_level = std::move(level);
        o.on_event = [this](fanout::log_event const& e) {
            std::lock_guard lock{m};
            lines.emplace_back(e.json);
        };
    }
    // The lines containing `text`.
    std::vector<std::string> with(std::string_view text) {
        std::lock_guard lock{m};
        std::vector<std::string> out;
        for (auto const& l : lines)
            if (l.find(text) != std::string::npos) out.push_back(l);
        return out;
    }
};

// Waits until pred() holds or the timeout passes; returns pred().
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 3s) {
    auto until = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (pred()) return true;
        if (std::chrono::steady_clock::now() >= until) return false;
        // I/O: polling what servers on other threads or processes did with their sockets, which
        // they signal no other way; the wait ends on the event, the timeout only bounds it.
        std::this_thread::sleep_for(5ms);
    }
}

}  // namespace fanout::test
