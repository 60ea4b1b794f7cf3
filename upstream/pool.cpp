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

std::unique_ptr<connection> connection_pool::take(std::size_t index) {
    auto& pool = idle_[index];
    if (pool.empty()) return nullptr;
    auto conn = std::move(pool.back());
    pool.pop_back();
    return conn;
}

bool connection_pool::put(std::size_t index, std::unique_ptr<connection>& conn) {
    auto& pool = idle_[index];
    if (pool.size() >= max_idle_) return false;
    error_code ec;
    if (!conn->socket.non_blocking()) conn->socket.non_blocking(true, ec);
    if (ec) return false;
    pool.push_back(std::move(conn));
    return true;
}

void connection_pool::clear() noexcept {
    for (auto& pool : idle_) pool.clear();
}

}  // namespace fanout
