#include "server/admin_listener.hpp"

#include "server/config_dump.hpp"
#include "server/listener.hpp"
#include "server/metrics_shard.hpp"
#include "wire/read_message.hpp"
#include "wire/use_tuple.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <array>

namespace fanout {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using namespace net::experimental::awaitable_operators;
using tcp = net::ip::tcp;
using boost::system::error_code;

namespace {

using wire::use_tuple;

}  // namespace

admin_listener::admin_listener(
    net::any_io_executor ex,
    options const& opts,
    std::shared_ptr<metrics_registry> registry,
    tcp::endpoint const& main
)
    : ex_(ex),
      acceptor_(open_listener(ex, listen_endpoint(opts.admin_listen_host, opts.admin_listen_port), false)),
      registry_(std::move(registry)),
      main_port_(main.port()) {
    configure(opts);
}

tcp::endpoint admin_listener::local_endpoint() const {
    return acceptor_.local_endpoint();
}

void admin_listener::configure(options const& opts) {
    limits_ = {opts.header_timeout, opts.idle_timeout, opts.max_request_head, opts.max_request_body};
    auto shown = opts;  // as bound: a port 0 was any free port
    shown.listen_port = main_port_;
    shown.admin_listen_port = acceptor_.local_endpoint().port();
    config_ = describe(shown);
}

void admin_listener::start() {
    if (!closed_) net::co_spawn(ex_, accept(shared_from_this()), net::detached);
}

void admin_listener::close() {
    if (closed_) return;
    closed_ = true;
    error_code ec;
    acceptor_.close(ec);
    for (auto* sock : sockets_) sock->close(ec);
}

bool admin_listener::draining() const {
    for (std::size_t i = 0; i < registry_->shard_count(); ++i)
        if (detail::metrics_writer::shard(*registry_, i).draining.load(std::memory_order_relaxed))
            return true;
    return false;
}

net::awaitable<void> admin_listener::accept(std::shared_ptr<admin_listener> self) {
    net::steady_timer backoff{self->ex_};
    while (!self->closed_) {
        auto [ec, sock] = co_await self->acceptor_.async_accept(use_tuple);
        if (self->closed_) break;
        if (ec) {
            // e.g. out of file descriptors: the main listener logs it; try again soon.
            backoff.expires_after(std::chrono::milliseconds(50));
            co_await backoff.async_wait(use_tuple);
            continue;
        }
        if (self->sockets_.size() >= max_connections) {
            if (write_rejection(sock)) close_after_answer(sock);
            continue;
        }
        net::co_spawn(self->ex_, session(self, std::move(sock)), net::detached);
    }
}

net::awaitable<void> admin_listener::session(std::shared_ptr<admin_listener> self, tcp::socket sock) {
    struct leave {
        std::list<tcp::socket*>& sockets;
        std::list<tcp::socket*>::iterator at;
        ~leave() { sockets.erase(at); }
    } guard{self->sockets_, self->sockets_.insert(self->sockets_.end(), &sock)};
    error_code ec;
    sock.set_option(tcp::no_delay(true), ec);
    phase_deadline limit{sock};
    co_await (self->serve(sock, limit) || limit.watch());
    if (!limit.expired() && sock.is_open() && !self->closed_) co_await linger(sock);
    sock.close(ec);
}

// Never throws: it races the watchdog with `||`, which would wait on for the other branch.
net::awaitable<void> admin_listener::serve(tcp::socket& sock, phase_deadline& limit) {
    try {
        beast::flat_buffer buffer;
        std::string head;
        for (;;) {
            if (buffer.size() == 0) {
                limit.after(limits_.idle_timeout);
                auto [ec] = co_await sock.async_wait(tcp::socket::wait_read, use_tuple);
                if (ec || closed_) co_return;
            }
            limit.after(limits_.header_timeout);
            request_parser parser;
            parser.header_limit(static_cast<std::uint32_t>(limits_.max_request_head));
            parser.body_limit(limits_.max_request_body);
            // No 100 Continue: a client that waits for it sends its body after its own delay.
            auto const ec = co_await wire::read_message(sock, buffer, parser, limits_.max_request_head);
            if (ec && (is_disconnect(ec) || !sock.is_open())) co_return;
            bool const keep_alive = !ec && parser.keep_alive();
            auto const res = ec ? read_failure_response(ec, parser, buffer) : answer(parser);
            limit.after(limits_.header_timeout);  // a client that does not read its answer
            head.clear();
            write_head(head, res, parser.version(), keep_alive, date_.now());
            auto const body =
                !ec && parser.method() == http::verb::head ? net::const_buffer{} : net::buffer(res.body);
            std::array<net::const_buffer, 2> bytes{net::buffer(head), body};
            auto [wec, n] = co_await net::async_write(sock, bytes, use_tuple);
            if (wec || !keep_alive) co_return;
        }
    } catch (std::exception const&) {
        // Cancelled between two operations, or a bug: the connection just closes.
    }
}

response admin_listener::answer(request_parser const& request) const {
    auto const path = path_without_query(request.target());
    if (path.empty()) return error_response(400, "malformed request target");
    if (path != "/healthz" && path != "/metrics" && path != "/config")
        return error_response(404, "not on the admin listener, which serves /healthz, /metrics and /config");
    if (request.method() != http::verb::get && request.method() != http::verb::head) {
        auto res = error_response(405, "method not allowed; use GET or HEAD");
        res.allow_get_head = true;
        return res;
    }
    if (path == "/healthz")
        return draining() ? json_response(503, R"({"status":"draining"})")
                          : json_response(200, R"({"status":"ok"})");
    if (path == "/config") return json_response(200, config_);
    auto const format = negotiate_exposition(request.fields().accept);
    auto res = json_response(200, registry_->render(format));
    res.content_type = content_type(format);
    return res;
}

}  // namespace fanout
