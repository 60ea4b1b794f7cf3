#include "upstream/pool.hpp"

#include <boost/asio/post.hpp>

#include <array>
#include <atomic>
#include <poll.h>

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

std::unique_ptr<connection> connection_pool::take() {
    if (idle_.empty()) return nullptr;
    auto conn = std::move(idle_.back());
    idle_.pop_back();
    return conn;
}

bool connection_pool::put(std::unique_ptr<connection>& conn) {
    if (closed_ || idle_.size() >= max_idle_) return false;
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

namespace {

// Bytes the connection holds already, read from the socket but not consumed.
bool holds_bytes(connection& conn) {
    return conn.buffer.size() != 0 || (conn.tls && tls_client::has_buffered(*conn.tls));
}

std::atomic<std::uint64_t> last_round{0};

}  // namespace

idle_check::idle_check(net::any_io_executor ex) : ex_(std::move(ex)) {
}

bool idle_check::quiet(connection& conn, std::span<connection_pool* const> pools) {
    if (holds_bytes(conn)) return false;
    if (round_->id != 0 && conn.quiet_in == round_->id) return true;
    // A new round: `conn` first, then the next connection of each pool.
    std::array<pollfd, max_polled> fds;
    std::array<connection*, max_polled> polled;
    std::size_t n = 0;
    auto add = [&](connection& c) {
        fds[n] = {.fd = c.socket.native_handle(), .events = POLLIN, .revents = 0};
        polled[n++] = &c;
    };
    add(conn);
    for (auto* pool : pools) {
        if (n == max_polled) break;
        if (auto* next = pool->next(); next && !holds_bytes(*next)) add(*next);
    }
    // Readable (bytes, an EOF), an error or a hang-up: anything at all but nothing.
    if (::poll(fds.data(), n, 0) < 0) return false;
    round_->id = last_round.fetch_add(1, std::memory_order_relaxed) + 1;
    for (std::size_t i = 0; i < n; ++i)
        if (fds[i].revents == 0) polled[i]->quiet_in = round_->id;
    if (!round_->closing) {
        round_->closing = true;
        net::post(ex_, [r = round_] { *r = {}; });
    }
    return conn.quiet_in == round_->id;
}

}  // namespace fanout
