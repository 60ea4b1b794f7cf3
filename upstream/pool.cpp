#include "upstream/pool.hpp"

namespace fanout {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using boost::system::error_code;

connection::~connection() {
    // Closed without a close_notify exchange, which OpenSSL would take for a broken session and
    // make unresumable: it is not.
    if (tls) SSL_set_shutdown(tls->native_handle(), SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
}

void expect_answer(connection& conn, std::size_t max_head, std::uint64_t max_body) {
    conn.parser.emplace();
    conn.parser->header_limit(static_cast<std::uint32_t>(max_head));
    conn.parser->body_limit(max_body);
}

bool quiet_since_pooled(connection& conn) {
    if (conn.buffer.size() != 0 || (conn.tls && tls_client::has_buffered(*conn.tls))) return false;
    char byte;
    error_code ec;
    conn.socket.receive(net::buffer(&byte, 1), tcp::socket::message_peek, ec);
    return ec == net::error::would_block;
}

std::unique_ptr<connection> connection_pool::take() {
    if (idle_.empty()) return nullptr;
    auto conn = std::move(idle_.back());
    idle_.pop_back();
    return conn;
}

bool connection_pool::put(std::unique_ptr<connection>& conn) {
    if (closed_ || idle_.size() >= max_idle_) return false;
    error_code ec;
    if (!conn->socket.non_blocking()) conn->socket.non_blocking(true, ec);
    if (ec) return false;
    idle_.push_back(std::move(conn));
    return true;
}

void connection_pool::clear() noexcept {
    idle_.clear();
}

void connection_pool::close() noexcept {
    closed_ = true;
    idle_.clear();
}

void connection_pool::max_idle(std::size_t n) {
    max_idle_ = n;
    // The oldest go first: they are the likeliest to have been closed by the service meanwhile.
    if (idle_.size() > n)
        idle_.erase(idle_.begin(), idle_.begin() + static_cast<std::ptrdiff_t>(idle_.size() - n));
}

}  // namespace fanout
