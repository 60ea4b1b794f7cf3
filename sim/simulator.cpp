#include "sim/simulator.hpp"

#include "wire/listener.hpp"
#include "wire/use_tuple.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <charconv>
#include <optional>
#include <random>
#include <stdexcept>
#include <tuple>
#include <unordered_map>

namespace fanout {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using namespace net::experimental::awaitable_operators;

namespace {

using wire::use_tuple;

constexpr std::string_view users_body =
    R"({"service":"users","users":[{"id":1,"name":"Ada Lovelace","email":"ada@example.com","plan":"pro"},)"
    R"({"id":2,"name":"Alan Turing","email":"alan@example.com","plan":"free"},)"
    R"({"id":3,"name":"Grace Hopper","email":"grace@example.com","plan":"team"}],"total":3})";
constexpr std::string_view orders_body =
    R"({"service":"orders","orders":[{"id":"A-1001","user_id":1,"total":129.5,"currency":"EUR","status":"shipped"},)"
    R"({"id":"A-1002","user_id":3,"total":42.0,"currency":"EUR","status":"pending"},)"
    R"({"id":"A-1003","user_id":2,"total":7.25,"currency":"EUR","status":"delivered"}],"total":3})";
constexpr std::string_view inventory_body =
    R"({"service":"inventory","items":[{"sku":"KB-01","name":"Keyboard","in_stock":42,"warehouse":"BER"},)"
    R"({"sku":"MS-02","name":"Mouse","in_stock":0,"warehouse":"BER"},)"
    R"({"sku":"MN-27","name":"Monitor 27in","in_stock":7,"warehouse":"HAM"}],"total":3})";
constexpr std::string_view generic_body =
    R"({"service":"generic","items":[{"id":1,"value":"alpha"},{"id":2,"value":"beta"},)"
    R"({"id":3,"value":"gamma"}],"total":3})";

std::string const& huge_body() {
    static std::string const body = [] {
        std::string b = "[";
        while (b.size() < 2 * 1024 * 1024) b += "1234567890,";
        b += "0]";
        return b;
    }();
    return body;
}

// The healthy answer: the service's own, or a list of plausible records of about body_bytes.
std::string ok_body(sim_service const& cfg) {
    if (cfg.body_bytes == 0) return std::string(sim_body(cfg.name));
    std::string body = R"({"service":")" + cfg.name + R"(","items":[)";
    for (int id = 1; body.size() + 80 < cfg.body_bytes; ++id) {
        if (id > 1) body += ',';
        body += R"({"id":)" + std::to_string(id) + R"(,"name":"item )" + std::to_string(id) +
                R"(","price":12.5,"in_stock":true,"tags":["a","b"]})";
    }
    return body + "]}";
}

constexpr std::pair<sim_behaviour, std::string_view> behaviour_names[] = {
    {sim_behaviour::ok, "ok"},
    {sim_behaviour::hang, "hang"},
    {sim_behaviour::fail, "fail"},
    {sim_behaviour::invalid_json, "invalid_json"},
    {sim_behaviour::huge, "huge"},
    {sim_behaviour::garbage, "garbage"},
    {sim_behaviour::close_early, "close_early"},
    {sim_behaviour::close_after_response, "close_after_response"},
    {sim_behaviour::early_hints, "early_hints"},
    {sim_behaviour::unsolicited, "unsolicited"},
    {sim_behaviour::endless_chunk_ext, "endless_chunk_ext"},
    {sim_behaviour::endless_trailers, "endless_trailers"},
    {sim_behaviour::endless_body, "endless_body"},
    {sim_behaviour::trickle, "trickle"},
    {sim_behaviour::chaos, "chaos"},
};

constexpr std::string_view chunked_head =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";

// The hostile behaviours: `head`, then `piece` again and again, without pause, until the peer leaves.
template <class Stream>
net::awaitable<void> send_forever(Stream& sock, std::string head, std::string_view piece) {
    std::string repeated;
    while (repeated.size() < 64 * 1024) repeated += piece;
    auto [ec, n] = co_await net::async_write(sock, net::buffer(head), use_tuple);
    while (!ec) std::tie(ec, n) = co_await net::async_write(sock, net::buffer(repeated), use_tuple);
}

}  // namespace

sim_behaviour parse_sim_behaviour(std::string_view name) {
    for (auto [b, n] : behaviour_names)
        if (n == name) return b;
    throw std::invalid_argument("unknown behaviour '" + std::string(name) + "'");
}

std::string_view to_string(sim_behaviour b) noexcept {
    for (auto [value, n] : behaviour_names)
        if (value == b) return n;
    return "unknown";
}

std::string_view sim_body(std::string_view service_name) noexcept {
    if (service_name == "users") return users_body;
    if (service_name == "orders") return orders_body;
    if (service_name == "inventory") return inventory_body;
    return generic_body;
}

struct simulator::state : std::enable_shared_from_this<state> {
    struct entry {
        sim_service config;
        tcp::acceptor acceptor;
        sim_counters counters;
        bool out = false;                          // in its outage
        std::unique_ptr<net::ssl::context> tls{};  // set when it serves TLS
    };

    net::any_io_executor ex;
    net::ip::address address;
    std::vector<std::unique_ptr<entry>> entries;
    std::unordered_map<tcp::socket*, std::size_t> open_sockets;  // and their service
    std::minstd_rand random{std::random_device{}()};
    bool cancelled = false;

    net::awaitable<void> accept(std::size_t i);
    net::awaitable<void> outage(std::size_t i);
    void reset_connections(std::size_t i);
    net::awaitable<void> serve(std::size_t i, tcp::socket sock);
    // The requests of one connection, read from and answered on `stream` (`sock` or TLS over it).
    template <class Stream>
    net::awaitable<void> serve_requests(std::size_t i, Stream& stream, tcp::socket& sock);
    std::chrono::milliseconds draw_latency(sim_service const& cfg);
    bool draw_failure(sim_service const& cfg);
    sim_behaviour draw_chaos();
};

namespace {

// Completes when the peer closes or resets; data sent meanwhile (a pipelined request) is not a close.
net::awaitable<void> peer_closed(tcp::socket& sock) {
    for (;;) {
        auto [ec] = co_await sock.async_wait(tcp::socket::wait_read, use_tuple);
        if (ec) co_return;
        boost::system::error_code aec;
        if (sock.available(aec) == 0 || aec) co_return;
        // Readable with data: park until cancelled, the answer is still owed.
        net::steady_timer park{sock.get_executor(), net::steady_timer::time_point::max()};
        co_await park.async_wait(use_tuple);
        co_return;
    }
}

net::awaitable<void> sleep_for(std::chrono::milliseconds d) {
    net::steady_timer timer{co_await net::this_coro::executor, d};
    co_await timer.async_wait(use_tuple);
}

// The server side of a TLS service. Throws std::invalid_argument naming a file it cannot use.
std::unique_ptr<net::ssl::context> make_tls_context(sim_service const& cfg) {
    auto ctx = std::make_unique<net::ssl::context>(net::ssl::context::tls_server);
    auto use = [&](char const* what, std::string const& file, auto load) {
        try {
            load(file);
        } catch (boost::system::system_error const& e) {
            throw std::invalid_argument(std::string(what) + " '" + file + "': " + e.code().message());
        }
    };
    use("--tls-cert", cfg.tls_cert, [&](auto const& f) { ctx->use_certificate_chain_file(f); });
    use("--tls-key", cfg.tls_key,
        [&](auto const& f) { ctx->use_private_key_file(f, net::ssl::context::pem); });
    if (!cfg.tls_client_ca.empty()) {
        use("--tls-client-ca", cfg.tls_client_ca, [&](auto const& f) { ctx->load_verify_file(f); });
        ctx->set_verify_mode(net::ssl::verify_peer | net::ssl::verify_fail_if_no_peer_cert);
        SSL_CTX_set_client_CA_list(ctx->native_handle(), SSL_load_client_CA_file(cfg.tls_client_ca.c_str()));
    }
    if (cfg.tls_1_2_only) SSL_CTX_set_max_proto_version(ctx->native_handle(), TLS1_2_VERSION);
    // Sessions resume only within this context (required once client certificates are verified).
    constexpr unsigned char session_context[] = "fanout-sim";
    SSL_CTX_set_session_id_context(ctx->native_handle(), session_context, sizeof session_context - 1);
    return ctx;
}

http::response<http::string_body> make_response(http::status status, std::string body, bool keep_alive) {
    http::response<http::string_body> res{status, 11};
    res.set(http::field::server, "fanout-sim");
    res.set(http::field::content_type, "application/json");
    res.keep_alive(keep_alive);
    res.body() = std::move(body);
    res.prepare_payload();
    return res;
}

}  // namespace

std::chrono::milliseconds simulator::state::draw_latency(sim_service const& cfg) {
    auto base = cfg.latency;
    if (cfg.tail_ratio > 0.0 && std::bernoulli_distribution{cfg.tail_ratio}(random)) base = cfg.tail_latency;
    if (cfg.jitter.count() <= 0) return base;
    std::uniform_int_distribution<long> extra{0, static_cast<long>(cfg.jitter.count()) - 1};
    return base + std::chrono::milliseconds(extra(random));
}

// Resets (RST, not FIN) every open connection of service i, as a crashed process's do.
void simulator::state::reset_connections(std::size_t i) {
    boost::system::error_code ec;
    for (auto [sock, service] : open_sockets) {
        if (service != i) continue;
        sock->set_option(net::socket_base::linger(true, 0), ec);
        sock->close(ec);
    }
}

net::awaitable<void> simulator::state::outage(std::size_t i) {
    auto self = shared_from_this();
    auto& e = *entries[i];
    co_await sleep_for(*e.config.outage_after);
    if (cancelled) co_return;
    e.out = true;
    boost::system::error_code ec;
    if (!e.config.outage_hangs) {
        e.acceptor.close(ec);
        reset_connections(i);
    }
    co_await sleep_for(e.config.outage_for);
    e.out = false;
    if (cancelled) co_return;
    if (!e.config.outage_hangs) {
        try {
            e.acceptor = wire::open_listener(ex, {address, e.config.port}, /*reuse_port=*/false);
        } catch (std::exception const&) {
            co_return;  // the port was taken meanwhile: the outage lasts
        }
        net::co_spawn(ex, accept(i), net::detached);
    }
}

// The fault soak's mix: mostly healthy answers, and every way an upstream can fail or lie.
sim_behaviour simulator::state::draw_chaos() {
    static constexpr std::pair<sim_behaviour, int> mix[] = {
        {sim_behaviour::ok, 80},
        {sim_behaviour::fail, 4},
        {sim_behaviour::hang, 2},
        {sim_behaviour::close_early, 2},
        {sim_behaviour::garbage, 2},
        {sim_behaviour::unsolicited, 2},
        {sim_behaviour::early_hints, 2},
        {sim_behaviour::trickle, 2},
        {sim_behaviour::invalid_json, 1},
        {sim_behaviour::endless_body, 1},
        {sim_behaviour::endless_chunk_ext, 1},
        {sim_behaviour::close_after_response, 1},
    };
    int pick = std::uniform_int_distribution<int>{0, 99}(random);
    for (auto [b, weight] : mix) {
        if (pick < weight) return b;
        pick -= weight;
    }
    return sim_behaviour::ok;
}

bool simulator::state::draw_failure(sim_service const& cfg) {
    if (cfg.error_rate <= 0.0) return false;
    return std::bernoulli_distribution{cfg.error_rate}(random);
}

net::awaitable<void> simulator::state::accept(std::size_t i) {
    auto self = shared_from_this();
    auto& acceptor = entries[i]->acceptor;
    for (;;) {
        auto [ec, sock] = co_await acceptor.async_accept(use_tuple);
        if (ec == net::error::operation_aborted || !acceptor.is_open()) co_return;
        if (ec) continue;  // e.g. out of file descriptors: keep serving the others
        ++entries[i]->counters.connections;
        net::co_spawn(ex, serve(i, std::move(sock)), net::detached);
    }
}

net::awaitable<void> simulator::state::serve(std::size_t i, tcp::socket sock) {
    auto self = shared_from_this();
    open_sockets.emplace(&sock, i);
    struct unregister {
        state& s;
        tcp::socket* p;
        ~unregister() { s.open_sockets.erase(p); }
    } guard{*this, &sock};

    boost::system::error_code ec;
    sock.set_option(tcp::no_delay(true), ec);
    auto& e = *entries[i];
    if (!e.tls) {
        co_await serve_requests(i, sock, sock);
        co_return;
    }
    net::ssl::stream<tcp::socket&> tls{sock, *e.tls};
    auto [hec] = co_await tls.async_handshake(net::ssl::stream_base::server, use_tuple);
    if (hec) {
        ++e.counters.tls_failed;
        co_return;
    }
    ++(SSL_session_reused(tls.native_handle()) ? e.counters.tls_resumed : e.counters.tls_full);
    if (SSL_get_servername(tls.native_handle(), TLSEXT_NAMETYPE_host_name)) ++e.counters.tls_sni;
    co_await serve_requests(i, tls, sock);
}

template <class Stream>
net::awaitable<void> simulator::state::serve_requests(std::size_t i, Stream& stream, tcp::socket& sock) {
    auto const& cfg = entries[i]->config;
    auto& counters = entries[i]->counters;
    boost::system::error_code ec;
    beast::flat_buffer buffer;
    for (;;) {
        http::request_parser<http::string_body> parser;
        parser.header_limit(8 * 1024);
        parser.body_limit(64 * 1024);
        auto [rec, rn] = co_await http::async_read(stream, buffer, parser, use_tuple);
        if (rec) co_return;
        ++counters.requests;
        bool const keep_alive = parser.get().keep_alive();
        if (entries[i]->out) {
            if (!cfg.outage_hangs) {  // accepted just before it began
                ++counters.refused;
                sock.set_option(net::socket_base::linger(true, 0), ec);
                co_return;
            }
            co_await peer_closed(sock);
            ++counters.abandoned;
            co_return;
        }
        // The caller's time left, when it says.
        std::optional<std::chrono::milliseconds> budget;
        if (!cfg.deadline_header.empty()) {
            if (cfg.default_budget.count() > 0) budget = cfg.default_budget;
            auto it = parser.get().find(cfg.deadline_header);
            long ms = 0;
            if (it != parser.get().end()) {
                auto v = it->value();
                auto [end, fec] = std::from_chars(v.data(), v.data() + v.size(), ms);
                if (fec == std::errc{} && end == v.data() + v.size() && ms > 0)
                    budget = std::chrono::milliseconds(ms);
            }
        }

        bool const chaos = cfg.behaviour == sim_behaviour::chaos;
        auto const behaviour = chaos ? draw_chaos() : cfg.behaviour;
        if (behaviour == sim_behaviour::hang) {
            // In the chaos mix a hang is a long stall, so that wait-for-all requests still end.
            if (!chaos) {
                co_await peer_closed(sock);
                ++counters.abandoned;
                co_return;
            }
            auto which = co_await (sleep_for(std::chrono::milliseconds(2000)) || peer_closed(sock));
            if (which.index() == 1) ++counters.abandoned;
            co_return;
        }
        if (auto delay = draw_latency(cfg); !cfg.deadline_header.empty()) {
            // Work that goes on whether the caller waits or not, unless its budget is honoured.
            bool const stops = cfg.honour_deadline && budget && delay > *budget;
            auto const work = stops ? *budget : delay;
            if (work.count() > 0) co_await sleep_for(work);
            if (budget && work > *budget)
                counters.late_work_ms += static_cast<std::uint64_t>((work - *budget).count());
            if (stops) {
                ++counters.deadline_stops;
                auto res =
                    make_response(http::status::gateway_timeout, R"({"error":"deadline spent"})", keep_alive);
                auto [sec, sn] = co_await http::async_write(stream, res, use_tuple);
                if (sec || !keep_alive) co_return;
                continue;
            }
        } else if (delay.count() > 0) {
            auto which = co_await (sleep_for(delay) || peer_closed(sock));
            if (which.index() == 1) {
                ++counters.abandoned;
                co_return;
            }
        }

        switch (behaviour) {
            case sim_behaviour::endless_chunk_ext:
                co_await send_forever(stream, std::string(chunked_head) + "2;ext=", "a");
                co_return;
            case sim_behaviour::endless_trailers:
                co_await send_forever(
                    stream, std::string(chunked_head) + "2\r\n{}\r\n0\r\n", "X-Trailer: 1\r\n"
                );
                co_return;
            case sim_behaviour::endless_body:
                co_await send_forever(stream, std::string(chunked_head) + "1\r\n[\r\n", "2\r\n1,\r\n");
                co_return;
            case sim_behaviour::trickle: {
                auto body = ok_body(cfg);
                auto head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
                            std::to_string(body.size()) + "\r\n\r\n";
                auto [tec, tn] = co_await net::async_write(stream, net::buffer(head), use_tuple);
                for (std::size_t at = 0; !tec && at < body.size(); ++at) {
                    co_await sleep_for(std::chrono::milliseconds(2));
                    std::tie(tec, tn) =
                        co_await net::async_write(stream, net::buffer(&body[at], 1), use_tuple);
                }
                if (tec) co_return;
                ++counters.answered;
                continue;
            }
            case sim_behaviour::early_hints: {
                constexpr std::string_view hints =
                    "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n";
                auto [hec, hn] = co_await net::async_write(stream, net::buffer(hints), use_tuple);
                if (hec) co_return;
                break;
            }
            default:
                break;
        }

        std::string_view raw;
        http::response<http::string_body> res;
        switch (behaviour) {
            case sim_behaviour::garbage:
                raw = "this is not HTTP\r\n\r\n";
                break;
            case sim_behaviour::close_early:
                raw =
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                    "100\r\n\r\n{\"cut\":";
                break;
            case sim_behaviour::fail:
                res = make_response(
                    http::status::internal_server_error, R"({"error":"simulated failure"})", keep_alive
                );
                break;
            case sim_behaviour::invalid_json:
                res = make_response(http::status::ok, R"({"service":"broken","items":[1,2,)", keep_alive);
                break;
            case sim_behaviour::huge:
                res = make_response(http::status::ok, huge_body(), keep_alive);
                break;
            default:
                if (draw_failure(cfg))
                    res = make_response(
                        http::status::internal_server_error, R"({"error":"simulated failure"})", keep_alive
                    );
                else
                    res = make_response(http::status::ok, ok_body(cfg), keep_alive);
        }
        if (!raw.empty()) {
            co_await net::async_write(stream, net::buffer(raw), use_tuple);
            ++counters.answered;
            co_return;
        }
        auto [wec, wn] = co_await http::async_write(stream, res, use_tuple);
        if (wec) co_return;
        ++counters.answered;
        if (behaviour == sim_behaviour::unsolicited) {
            // Late enough to arrive while the connection sits idle in the client's pool.
            co_await sleep_for(std::chrono::milliseconds(5));
            auto extra = make_response(http::status::ok, R"({"unsolicited":true})", true);
            auto [uec, un] = co_await http::async_write(stream, extra, use_tuple);
            if (uec) co_return;
            ++counters.unsolicited;
        }
        if (!keep_alive || behaviour == sim_behaviour::close_after_response) {
            sock.shutdown(tcp::socket::shutdown_both, ec);
            co_return;
        }
    }
}

simulator::simulator(net::any_io_executor ex, std::vector<sim_service> services, net::ip::address address)
    : state_(std::make_shared<state>()) {
    state_->ex = ex;
    state_->address = address;
    for (auto& cfg : services) {
        // entry holds atomics, so it is built in place.
        std::unique_ptr<state::entry> e{new state::entry{std::move(cfg), tcp::acceptor{ex}, {}}};
        e->acceptor = wire::open_listener(ex, {address, e->config.port}, /*reuse_port=*/false);
        e->config.port = e->acceptor.local_endpoint().port();
        if (!e->config.tls_cert.empty()) e->tls = make_tls_context(e->config);
        state_->entries.push_back(std::move(e));
    }
}

simulator::~simulator() = default;

void simulator::start() {
    for (std::size_t i = 0; i < state_->entries.size(); ++i) {
        net::co_spawn(state_->ex, state_->accept(i), net::detached);
        if (state_->entries[i]->config.outage_after)
            net::co_spawn(state_->ex, state_->outage(i), net::detached);
    }
}

void simulator::cancel() {
    state_->cancelled = true;
    boost::system::error_code ec;
    for (auto& e : state_->entries) e->acceptor.close(ec);
    for (auto [sock, service] : state_->open_sockets) sock->close(ec);
}

std::size_t simulator::size() const noexcept {
    return state_->entries.size();
}

std::string const& simulator::name(std::size_t i) const noexcept {
    return state_->entries[i]->config.name;
}

std::uint16_t simulator::port(std::size_t i) const noexcept {
    return state_->entries[i]->config.port;
}

std::string simulator::url(std::size_t i) const {
    auto host =
        state_->address.is_v6() ? "[" + state_->address.to_string() + "]" : state_->address.to_string();
    auto const scheme = state_->entries[i]->tls ? "https://" : "http://";
    return scheme + host + ":" + std::to_string(port(i)) + "/" + name(i);
}

sim_counters const& simulator::counters(std::size_t i) const noexcept {
    return state_->entries[i]->counters;
}

}  // namespace fanout
