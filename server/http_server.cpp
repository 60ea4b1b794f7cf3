#include "server/http_server.hpp"

#include "server/router.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include <sys/socket.h>

namespace fanout::server {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using boost::system::error_code;

namespace {

constexpr auto use_tuple = net::as_tuple(net::use_awaitable);
using reuse_port_option = net::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

// The peer went away or we are shutting down: nothing to answer.
bool is_disconnect(error_code ec) {
    return ec == http::error::end_of_stream || ec == net::error::eof || ec == net::error::connection_reset ||
           ec == net::error::operation_aborted || ec == net::error::broken_pipe;
}

// Answer to a request that could not be read; the connection is closed after it.
response read_failure_response(error_code ec) {
    if (ec == http::error::header_limit) return error_response(431, "request head too large");
    if (ec == http::error::body_limit) return error_response(413, "request body too large");
    return error_response(400, "malformed HTTP request");
}

}  // namespace

struct http_server::impl : std::enable_shared_from_this<impl> {
    impl(executor_type executor, options o)
        : ex(std::move(executor)),
          opts(std::move(o)),
          acceptor(ex),
          client(ex, opts.upstreams, {opts.max_upstream_body, opts.upstream_pool_size}),
          ctx{client} {}

    executor_type ex;
    options opts;
    tcp::acceptor acceptor;
    upstream::client client;
    handlers::context ctx;

    net::awaitable<void> accept();
    net::awaitable<void> session(tcp::socket sock);
};

net::awaitable<void> http_server::impl::accept() {
    auto self = shared_from_this();
    for (;;) {
        auto [ec, sock] = co_await acceptor.async_accept(use_tuple);
        if (ec == net::error::operation_aborted || !acceptor.is_open()) co_return;
        if (ec) continue;  // e.g. EMFILE: keep serving the connections we have
        net::co_spawn(ex, session(std::move(sock)), net::detached);
    }
}

net::awaitable<void> http_server::impl::session(tcp::socket sock) {
    auto self = shared_from_this();
    error_code ec;
    sock.set_option(tcp::no_delay(true), ec);
    beast::flat_buffer buffer;
    for (;;) {
        http::request_parser<http::string_body> parser;
        parser.header_limit(static_cast<std::uint32_t>(opts.max_request_head));
        parser.body_limit(opts.max_request_body);
        auto [rec, rn] = co_await http::async_read(sock, buffer, parser, use_tuple);
        if (rec && is_disconnect(rec)) break;

        response res;
        bool keep_alive = false;
        if (rec) {
            res = read_failure_response(rec);
        } else {
            auto const& req = parser.get();
            keep_alive = req.keep_alive();
            bool failed = false;
            try {
                res = co_await route(ctx, opts, req);
            } catch (std::exception const&) {
                failed = true;  // a bug: answer without disclosing anything, and drop the connection
            }
            if (failed) {
                res = error_response(500, "internal error");
                keep_alive = false;
            }
            res.version(req.version());
        }
        res.keep_alive(keep_alive);
        res.prepare_payload();
        auto [wec, wn] = co_await http::async_write(sock, res, use_tuple);
        if (wec || !keep_alive) break;
    }
    sock.shutdown(tcp::socket::shutdown_send, ec);
    sock.close(ec);
}

http_server::http_server(executor_type ex, options opts, bool reuse_port)
    : impl_(std::make_shared<impl>(std::move(ex), std::move(opts))) {
    auto& acceptor = impl_->acceptor;
    auto address = impl_->opts.listen_host == "localhost" ? net::ip::make_address("127.0.0.1")
                                                          : net::ip::make_address(impl_->opts.listen_host);
    tcp::endpoint endpoint{address, impl_->opts.listen_port};
    acceptor.open(endpoint.protocol());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    if (reuse_port) acceptor.set_option(reuse_port_option(true));
    acceptor.bind(endpoint);
    acceptor.listen(net::socket_base::max_listen_connections);
}

http_server::~http_server() = default;

http_server::executor_type http_server::get_executor() const noexcept {
    return impl_->ex;
}

tcp::endpoint http_server::local_endpoint() const {
    return impl_->acceptor.local_endpoint();
}

void http_server::start() {
    net::co_spawn(impl_->ex, impl_->accept(), net::detached);
}

void http_server::cancel() {
    error_code ec;
    impl_->acceptor.close(ec);
}

upstream::pool_stats http_server::upstream_stats() const noexcept {
    return impl_->client.stats();
}

handlers::handler_stats const& http_server::handler_stats() const noexcept {
    return *impl_->ctx.stats;
}

}  // namespace fanout::server
