#include "tests/support.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

namespace fanout::test {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

unsigned test_threads() {
    auto const* env = std::getenv("FANOUT_TEST_THREADS");
    return env ? std::max(1, std::atoi(env)) : 1;
}

harness::harness(
    std::vector<fanout::sim_service> services, fanout::options opts, std::vector<fanout::service> extra
) {
    for (unsigned i = 0; i < test_threads(); ++i) {
        loops_.push_back(std::make_unique<net::io_context>(1));
        work_.push_back(net::make_work_guard(*loops_.back()));
    }
    sim_ = std::make_unique<fanout::simulator>(loops_[0]->get_executor(), std::move(services));
    opts.listen_host = "127.0.0.1";
    opts.listen_port = 0;
    // Services the caller configured by name (e.g. with a timeout) get the simulator's address.
    auto configured = std::move(opts.upstreams);
    opts.upstreams.clear();
    for (std::size_t i = 0; i < sim_->size(); ++i) {
        auto s = fanout::make_service(sim_->name(i), sim_->url(i));
        for (auto const& c : configured)
            if (c.name == s.name) {
                s.timeout = c.timeout;
                if (s.tls && c.tls) s.tls = c.tls;
            }
        opts.upstreams.push_back(std::move(s));
    }
    for (auto& s : extra) opts.upstreams.push_back(std::move(s));
    if (!opts.logger && !opts.on_event) {
        opts.logger =
            std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::null_sink_mt>());
        opts.logger->set_level(spdlog::level::off);
    }
    std::vector<std::string> names;
    for (auto const& s : opts.upstreams) names.push_back(s.name);
    auto registry =
        std::make_shared<fanout::metrics_registry>(names, loops_.size(), fanout::route_labels(opts.routes));
    for (std::size_t i = 0; i < loops_.size(); ++i) {
        servers_.push_back(std::make_unique<fanout::http_server>(
            loops_[i]->get_executor(), opts, registry, i, loops_.size() > 1
        ));
        opts.listen_port = servers_.front()->local_endpoint().port();
    }
    sim_->start();
    stopped_ = all_stopped_.get_future().share();
    running_ = servers_.size();
    for (auto& s : servers_) {
        s->async_run([this](boost::system::error_code) {
            if (--running_ == 0) all_stopped_.set_value();
        });
    }
    for (auto& loop : loops_) threads_.emplace_back([&l = *loop] { l.run(); });
}

harness::~harness() {
    for (auto& s : servers_) s->cancel();
    if (!wait_stopped()) BOOST_ERROR("a server did not stop after cancel()");
    on_loop(0, [this] { sim_->cancel(); });
    for (auto& loop : loops_) loop->stop();
    for (auto& t : threads_) t.join();
}

bool harness::wait_stopped(std::chrono::milliseconds timeout) {
    return stopped_.wait_for(timeout) == std::future_status::ready;
}

std::uint16_t harness::port() const {
    return servers_.front()->local_endpoint().port();
}

fanout::sim_counters const& harness::counters(std::string_view service) const {
    for (std::size_t i = 0; i < sim_->size(); ++i)
        if (sim_->name(i) == service) return sim_->counters(i);
    throw std::invalid_argument("no simulated service " + std::string(service));
}

fanout::pool_stats harness::upstream_stats() {
    fanout::pool_stats total;
    for (std::size_t i = 0; i < servers_.size(); ++i) {
        auto s = on_loop(i, [this, i] { return servers_[i]->upstream_stats(); });
        total.opened += s.opened;
        total.reused += s.reused;
        total.retried += s.retried;
    }
    return total;
}

std::size_t harness::channel_producers_live() {
    std::size_t total = 0;
    for (std::size_t i = 0; i < servers_.size(); ++i)
        total += on_loop(i, [this, i] { return servers_[i]->detached_fetches(); });
    return total;
}

sim_runner::sim_runner(std::vector<fanout::sim_service> services)
    : sim_(ioc_.get_executor(), std::move(services)) {
    sim_.start();
    thread_ = std::thread([this] { ioc_.run(); });
}

sim_runner::~sim_runner() {
    net::post(ioc_, [this] { sim_.cancel(); });
    ioc_.stop();
    thread_.join();
}

std::string sim_runner::upstream_flag(std::size_t i) const {
    return sim_.name(i) + "=" + sim_.url(i);
}

std::optional<response> fetch(
    std::uint16_t port, std::string_view target, std::chrono::milliseconds timeout
) {
    blocking_client c{port};
    c.send_get(target);
    return c.read(timeout);
}

std::string scrape(std::uint16_t port) {
    auto res = fetch(port, "/metrics");
    BOOST_TEST_REQUIRE(res.has_value());
    BOOST_TEST(res->result_int() == 200u);
    return res->body();
}

std::string scrape_when(std::uint16_t port, std::vector<std::pair<std::string, double>> const& expected) {
    std::string page;
    eventually([&] {
        page = scrape(port);
        return std::all_of(expected.begin(), expected.end(), [&](auto const& e) {
            return metric(page, e.first) == e.second;
        });
    });
    return page;
}

double metric(std::string const& exposition, std::string const& series) {
    std::size_t pos = 0;
    while ((pos = exposition.find(series + " ", pos)) != std::string::npos) {
        if (pos == 0 || exposition[pos - 1] == '\n') {
            auto end = exposition.find('\n', pos);
            return std::stod(exposition.substr(pos + series.size() + 1, end - pos - series.size() - 1));
        }
        ++pos;
    }
    return -1;
}

fanout::sim_service sim(std::string name, fanout::sim_behaviour b, std::chrono::milliseconds latency) {
    fanout::sim_service s;
    s.name = std::move(name);
    s.behaviour = b;
    s.latency = latency;
    return s;
}

std::uint16_t closed_port() {
    net::io_context ioc;
    tcp::acceptor acceptor{ioc, {net::ip::make_address("127.0.0.1"), 0}};
    return acceptor.local_endpoint().port();  // closed again when acceptor goes
}

blocking_client::blocking_client(std::uint16_t port) : stream_(ioc_) {
    stream_.connect(tcp::endpoint{net::ip::make_address("127.0.0.1"), port});
}

void blocking_client::send(std::string_view raw) {
    net::write(stream_.socket(), net::buffer(raw));
}

void blocking_client::send_get(std::string_view target, bool keep_alive) {
    http::request<http::empty_body> req{http::verb::get, target, 11};
    req.set(http::field::host, "127.0.0.1");
    req.keep_alive(keep_alive);
    http::write(stream_.socket(), req);
}

std::optional<response> blocking_client::read(std::chrono::milliseconds timeout, bool to_head) {
    http::response_parser<http::string_body> parser;
    parser.body_limit(16 * 1024 * 1024);
    parser.skip(to_head);
    boost::system::error_code result = net::error::would_block;
    stream_.expires_after(timeout);
    http::async_read(stream_, buffer_, parser, [&](boost::system::error_code ec, std::size_t) {
        result = ec;
    });
    ioc_.restart();
    ioc_.run();
    if (result) return std::nullopt;
    return parser.release();
}

bool blocking_client::closed_by_server(std::chrono::milliseconds timeout) {
    boost::system::error_code result = net::error::would_block;
    stream_.expires_after(timeout);
    char byte;
    stream_.async_read_some(net::buffer(&byte, 1), [&](boost::system::error_code ec, std::size_t) {
        result = ec;
    });
    ioc_.restart();
    ioc_.run();
    return result == net::error::eof || result == net::error::connection_reset;
}

void blocking_client::close() {
    stream_.close();
}

aggregate_answer get(
    std::uint16_t port,
    std::string_view target,
    std::chrono::milliseconds timeout,
    std::vector<header> const& headers
) {
    auto start = std::chrono::steady_clock::now();
    blocking_client c{port};
    std::string raw = "GET " + std::string(target) + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    for (auto const& h : headers) raw += h.name + ": " + h.value + "\r\n";
    c.send(raw + "\r\n");
    auto res = c.read(timeout);
    BOOST_TEST_REQUIRE(res.has_value(), "no answer to " << target << " within " << timeout.count() << " ms");
    aggregate_answer a;
    a.took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    a.status = res->result_int();
    a.complete_header = std::string((*res)["X-Aggregate-Complete"]);
    a.body = boost::json::parse(res->body());
    return a;
}

namespace {

bool take_one(std::atomic<unsigned>& n) {
    for (auto v = n.load(); v != 0;)
        if (n.compare_exchange_weak(v, v - 1)) return true;
    return false;
}

net::awaitable<void> echo_serve(tcp::socket socket, echo_upstream::state& state) {
    beast::flat_buffer buffer;
    for (;;) {
        http::request<http::empty_body> req;
        auto [ec, n] = co_await http::async_read(socket, buffer, req, net::as_tuple(net::use_awaitable));
        if (ec && n == 0 && buffer.size() == 0) ++state.closed;
        if (ec) co_return;
        ++state.requests;
        if (take_one(state.hang_next)) {
            // Unanswered until the client gives up on it and closes the connection.
            char byte;
            co_await socket.async_read_some(net::buffer(&byte, 1), net::as_tuple(net::use_awaitable));
            ++state.abandoned;
            co_return;
        }
        // A target may ask for its answer: "/sleep/MS...", "/status/NNN...", "/array...".
        std::string_view const target(req.target().data(), req.target().size());
        auto const number_after = [&](std::string_view prefix) -> unsigned {
            if (target.substr(0, prefix.size()) != prefix) return 0;
            unsigned value = 0;
            std::from_chars(target.data() + prefix.size(), target.data() + target.size(), value);
            return value;
        };
        auto const delay_ms = take_one(state.slow_next) ? 1000u : number_after("/sleep/");
        if (delay_ms) {
            net::steady_timer delay{socket.get_executor(), std::chrono::milliseconds(delay_ms)};
            co_await delay.async_wait(net::as_tuple(net::use_awaitable));
        }
        auto const status = number_after("/status/");
        boost::json::object headers;
        for (auto const& f : req) {
            std::string name(f.name_string());
            std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) {
                return std::tolower(c);
            });
            headers[name] = std::string(f.value());
        }
        http::response<http::string_body> res{
            static_cast<http::status>(status ? status : state.status.load()), 11};
        res.set(http::field::content_type, "application/json");
        res.body() = target.substr(0, 6) == "/array"
                         ? std::string("[1,2,3]")
                         : boost::json::serialize(boost::json::object{
                               {"target", std::string(req.target())}, {"headers", std::move(headers)}});
        res.prepare_payload();
        auto [wec, wn] = co_await http::async_write(socket, res, net::as_tuple(net::use_awaitable));
        if (wec) co_return;
    }
}

net::awaitable<void> echo_accept(tcp::acceptor& acceptor, echo_upstream::state& state) {
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(net::as_tuple(net::use_awaitable));
        if (ec) co_return;
        ++state.connections;
        if (take_one(state.drop_next)) continue;  // the socket closes here, nothing read
        net::co_spawn(acceptor.get_executor(), echo_serve(std::move(socket), state), net::detached);
    }
}

}  // namespace

echo_upstream::echo_upstream() : acceptor_(ioc_, {net::ip::make_address("127.0.0.1"), 0}) {
    net::co_spawn(ioc_, echo_accept(acceptor_, state_), net::detached);
    thread_ = std::thread([this] { ioc_.run(); });
}

echo_upstream::~echo_upstream() {
    net::post(ioc_, [this] { ioc_.stop(); });
    thread_.join();
}

std::string echo_upstream::url(std::string_view target) const {
    return "http://127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port()) + std::string(target);
}

std::string echoed_target(aggregate_answer const& a, std::string_view service) {
    return std::string(a.body.at("results").at(service).at("target").as_string());
}

std::string echoed_header(aggregate_answer const& a, std::string_view name, std::string_view service) {
    auto const& headers = a.body.at("results").at(service).at("headers").as_object();
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : std::string(it->value().as_string());
}

void shutdown_all(harness& h, std::chrono::milliseconds grace, bool wait) {
    for (std::size_t i = 0; i < h.threads(); ++i) {
        h.server(i).shutdown(grace);
        if (wait) h.on_loop(i, [] {});
    }
}

bool refuses_connections(std::uint16_t port) {
    try {
        blocking_client c{port};
        return false;
    } catch (std::exception const&) {
        return true;
    }
}

net::awaitable<std::optional<fanout::fetch_result>> fetch_within(
    fanout::client& c, std::chrono::milliseconds limit
) {
    using namespace net::experimental::awaitable_operators;
    net::steady_timer timer{co_await net::this_coro::executor, limit};
    auto r = co_await (c.fetch(0) || timer.async_wait(net::use_awaitable));
    if (r.index() == 0) co_return std::get<0>(std::move(r));
    co_return std::nullopt;
}

std::string kind_of(aggregate_answer const& a, std::string_view service) {
    auto const& errors = a.body.at("errors").as_object();
    auto it = errors.find(service);
    return it == errors.end() ? "ok" : std::string(it->value().at("kind").as_string());
}

}  // namespace fanout::test
