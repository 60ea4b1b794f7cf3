#include "tests/support.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/json/parse.hpp>
#include <boost/test/unit_test.hpp>

namespace fanout::test {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

harness::harness(
    std::vector<upstream::sim_service> services, server::options opts, std::vector<upstream::service> extra
) {
    sim_ = std::make_unique<upstream::simulator>(ioc_.get_executor(), std::move(services));
    opts.listen_host = "127.0.0.1";
    opts.listen_port = 0;
    for (std::size_t i = 0; i < sim_->size(); ++i)
        opts.upstreams.push_back(upstream::make_service(sim_->name(i), sim_->url(i)));
    for (auto& s : extra) opts.upstreams.push_back(std::move(s));
    server_ = std::make_unique<server::http_server>(ioc_.get_executor(), std::move(opts));
    sim_->start();
    server_->start();
    thread_ = std::thread([this] { ioc_.run(); });
}

harness::~harness() {
    ioc_.stop();
    thread_.join();
}

std::uint16_t harness::port() const {
    return server_->local_endpoint().port();
}

upstream::sim_counters const& harness::counters(std::string_view service) const {
    for (std::size_t i = 0; i < sim_->size(); ++i)
        if (sim_->name(i) == service) return sim_->counters(i);
    throw std::invalid_argument("no simulated service " + std::string(service));
}

upstream::sim_service sim(std::string name, upstream::sim_behaviour b, std::chrono::milliseconds latency) {
    upstream::sim_service s;
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

client::client(std::uint16_t port) : stream_(ioc_) {
    stream_.connect(tcp::endpoint{net::ip::make_address("127.0.0.1"), port});
}

void client::send(std::string_view raw) {
    net::write(stream_.socket(), net::buffer(raw));
}

void client::send_get(std::string_view target, bool keep_alive) {
    http::request<http::empty_body> req{http::verb::get, target, 11};
    req.set(http::field::host, "127.0.0.1");
    req.keep_alive(keep_alive);
    http::write(stream_.socket(), req);
}

std::optional<response> client::read(std::chrono::milliseconds timeout) {
    response res;
    boost::system::error_code result = net::error::would_block;
    stream_.expires_after(timeout);
    http::async_read(stream_, buffer_, res, [&](boost::system::error_code ec, std::size_t) { result = ec; });
    ioc_.restart();
    ioc_.run();
    if (result) return std::nullopt;
    return res;
}

bool client::closed_by_server(std::chrono::milliseconds timeout) {
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

void client::close() {
    stream_.close();
}

aggregate_answer get(std::uint16_t port, std::string_view target, std::chrono::milliseconds timeout) {
    auto start = std::chrono::steady_clock::now();
    client c{port};
    c.send_get(target);
    auto res = c.read(timeout);
    BOOST_TEST_REQUIRE(res.has_value(), "no answer to " << target << " within " << timeout.count() << " ms");
    aggregate_answer a;
    a.took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
    a.status = res->result_int();
    a.complete_header = std::string((*res)["X-Aggregate-Complete"]);
    a.body = boost::json::parse(res->body());
    return a;
}

}  // namespace fanout::test
