// HTTPS upstreams (service::tls): what is verified and how a failure reads, pooling and session
// resumption, deadlines through the handshake, and the bounds on what a server may send around
// it. Against fanout-sim's TLS on loopback (and, for what it will not do, servers written with
// OpenSSL directly), with certificates made at test time.

#include "tests/support.hpp"
#include "tests/tls_certs.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/asio/write.hpp>
#include <boost/test/unit_test.hpp>

#include <fanout/client.hpp>
#include <fanout/options.hpp>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <thread>

using namespace fanout;
using namespace fanout::test;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using namespace net::experimental::awaitable_operators;

namespace {

test_pki const& pki() {
    static test_pki const p;  // made once per run; its directory removed at exit
    return p;
}

fanout::sim_service tls_sim(
    std::string cert, std::string key, std::string client_ca = "", std::chrono::milliseconds latency = 0ms
) {
    auto s = sim("echo", fanout::sim_behaviour::ok, latency);
    s.tls_cert = std::move(cert);
    s.tls_key = std::move(key);
    s.tls_client_ca = std::move(client_ca);
    return s;
}

fanout::sim_service good_sim(std::string client_ca = "", std::chrono::milliseconds latency = 0ms) {
    return tls_sim(pki().server_cert(), pki().server_key(), std::move(client_ca), latency);
}

// Trusting the test CA only.
fanout::tls_settings trusting_test_ca() {
    return {.ca_file = pki().ca_cert()};
}

// A service at `url` whose certificate is checked against the test CA.
fanout::service trusting(std::string name, std::string const& url) {
    auto s = fanout::make_service(std::move(name), url);
    s.tls = trusting_test_ca();
    return s;
}

// A simulated TLS upstream and a client of it, on one event loop driven by the test's thread.
struct tls_loop {
    net::io_context ioc{1};
    fanout::simulator sim;
    fanout::client client;

    tls_loop(fanout::sim_service s, fanout::tls_settings tls, fanout::client_options o = {})
        : sim(ioc.get_executor(), {std::move(s)}), client(ioc.get_executor(), {service(sim, tls)}, o) {
        sim.start();
    }
    ~tls_loop() {
        client.close_idle();
        sim.cancel();
        ioc.restart();
        ioc.poll();
    }

    static fanout::service service(fanout::simulator const& sim, fanout::tls_settings tls) {
        auto s = fanout::make_service("echo", sim.url(0));
        BOOST_TEST_REQUIRE(s.tls.has_value());
        s.tls = std::move(tls);
        return s;
    }

    // Runs the loop until `op` is done (the simulator's accept loop never is).
    template <class T>
    T run(net::awaitable<T> op) {
        std::optional<T> out;
        std::exception_ptr error;
        net::co_spawn(ioc, std::move(op), [&](std::exception_ptr e, T v) {
            error = e;
            out = std::move(v);
            ioc.stop();
        });
        ioc.restart();
        ioc.run_for(10s);
        if (error) std::rethrow_exception(error);
        BOOST_TEST_REQUIRE(out.has_value());
        return std::move(*out);
    }
    fanout::fetch_result fetch() { return run(client.fetch(0)); }

    // Runs the loop until pred() holds, at most 3 s; returns pred().
    template <class Pred>
    bool until(Pred pred) {
        for (int i = 0; i < 600 && !pred(); ++i) {
            ioc.restart();
            ioc.run_for(5ms);
        }
        return pred();
    }
    fanout::sim_counters const& upstream() const { return sim.counters(0); }
};

void check_tls_failure(fanout::fetch_result const& r, std::string_view cause) {
    BOOST_TEST_REQUIRE(!r.ok());
    BOOST_TEST((r.error->kind == error_kind::tls));
    BOOST_TEST(r.error->message.find(cause) != std::string::npos, r.error->message);
}

// Accepts connections and never says a word (or only `greeting`): every TLS handshake with it
// hangs (or fails). Counts the connections the client closed.
class silent_upstream {
  public:
    explicit silent_upstream(std::string greeting = "") : greeting_(std::move(greeting)) {
        accept();
        thread_ = std::thread([this] { ioc_.run(); });
    }
    ~silent_upstream() {
        ioc_.stop();
        thread_.join();
    }
    std::string url() const { return "https://127.0.0.1:" + std::to_string(port_) + "/silent"; }
    std::atomic<int> accepted{0}, closed{0};

  private:
    void accept() {
        acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket s) {
            if (ec) return;
            ++accepted;
            auto sock = std::make_shared<tcp::socket>(std::move(s));
            if (!greeting_.empty()) net::write(*sock, net::buffer(greeting_), ec);
            read(sock);
            accept();
        });
    }
    void read(std::shared_ptr<tcp::socket> s) {
        auto buffer = std::make_shared<std::array<char, 4096>>();
        s->async_read_some(
            net::buffer(*buffer),
            [this, s, buffer](boost::system::error_code ec, std::size_t) {
                if (ec)
                    ++closed;
                else
                    read(s);
            }
        );
    }

    std::string greeting_;
    net::io_context ioc_{1};
    tcp::acceptor acceptor_{ioc_, {net::ip::make_address("127.0.0.1"), 0}};
    std::uint16_t port_ = acceptor_.local_endpoint().port();
    std::thread thread_;
};

// One connection of a TLS upstream written with OpenSSL directly, on a thread of its own, for what
// fanout-sim will never do. Counts what it sent, and sees the client hang up.
class raw_tls_upstream {
  public:
    enum class script {
        hello_requests,         // answers the ClientHello with plaintext HelloRequests, without pause
        hello_requests_slowly,  // ... one every 20 ms
        session_tickets,        // TLS 1.3: after the request, session tickets without pause
        renegotiation,          // TLS 1.2: asks for a renegotiation 20 times during a chunked answer
    };

    explicit raw_tls_upstream(script s) : script_(s) {
        thread_ = std::thread([this] { serve(); });
    }
    ~raw_tls_upstream() {
        // Wakes the thread wherever it blocks: in accept(), a read or a write.
        {
            std::lock_guard lock{m_};
            stopping_ = true;
            if (peer_fd_ >= 0) ::shutdown(peer_fd_, SHUT_RDWR);
        }
        ::shutdown(acceptor_.native_handle(), SHUT_RDWR);
        thread_.join();
    }
    std::string url() const { return "https://127.0.0.1:" + std::to_string(port_) + "/raw"; }

    std::atomic<std::uint64_t> sent{0};  // bytes of HelloRequests, or of the whole connection
    std::atomic<int> client_hellos{0};   // the handshake's, then one per renegotiation
    std::atomic<bool> ended{false};      // the connection is over (the client closed it, or TLS failed)

  private:
    void serve() {
        // A write to a closed connection fails with EPIPE on this thread instead of killing the process.
        sigset_t pipe;
        sigemptyset(&pipe);
        sigaddset(&pipe, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe, nullptr);
        boost::system::error_code ec;
        tcp::socket peer{ioc_};
        acceptor_.accept(peer, ec);
        if (ec) return;
        {
            std::lock_guard lock{m_};
            if (stopping_) return;
            peer_fd_ = peer.native_handle();
        }
        if (script_ == script::hello_requests || script_ == script::hello_requests_slowly)
            send_hello_requests(peer);
        else
            speak_tls(peer.native_handle());
        std::lock_guard lock{m_};
        peer_fd_ = -1;  // before the socket closes, and its number may be reused
        ended = true;
    }

    // Plaintext handshake records, each holding HelloRequests (type 0, length 0), which a client
    // still in its handshake is to ignore.
    void send_hello_requests(tcp::socket& peer) {
        std::array<char, 4096> client_hello;
        boost::system::error_code ec;
        peer.read_some(net::buffer(client_hello), ec);
        bool const slowly = script_ == script::hello_requests_slowly;
        std::size_t const payload = slowly ? 4 : 16 * 1024;
        std::string record = {0x16, 0x03, 0x03, char(payload >> 8), char(payload & 0xff)};
        record.append(payload, '\0');
        while (!ec) {
            net::write(peer, net::buffer(record), ec);
            if (!ec) sent += payload;
            // I/O: the peer under test is a slow one; its pace is the behaviour tested, not a wait
            // for an event.
            if (slowly) std::this_thread::sleep_for(20ms);
        }
    }

    void speak_tls(int fd) {
        std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx{
            SSL_CTX_new(TLS_server_method()), &SSL_CTX_free};
        SSL_CTX_use_certificate_chain_file(ctx.get(), pki().server_cert().c_str());
        SSL_CTX_use_PrivateKey_file(ctx.get(), pki().server_key().c_str(), SSL_FILETYPE_PEM);
        auto const version = script_ == script::renegotiation ? TLS1_2_VERSION : TLS1_3_VERSION;
        SSL_CTX_set_min_proto_version(ctx.get(), version);
        SSL_CTX_set_max_proto_version(ctx.get(), version);
        std::unique_ptr<SSL, decltype(&SSL_free)> ssl{SSL_new(ctx.get()), &SSL_free};
        SSL_set_fd(ssl.get(), fd);
        SSL_set_msg_callback_arg(ssl.get(), this);
        SSL_set_msg_callback(
            ssl.get(),
            [](int write_p, int, int type, void const* buf, std::size_t len, SSL*, void* arg) {
                auto const* p = static_cast<unsigned char const*>(buf);
                if (!write_p && type == SSL3_RT_HANDSHAKE && len > 0 && p[0] == SSL3_MT_CLIENT_HELLO)
                    ++static_cast<raw_tls_upstream*>(arg)->client_hellos;
            }
        );
        if (SSL_accept(ssl.get()) == 1 && read_request(ssl.get())) {
            if (script_ == script::session_tickets) {
                // Once a write has failed, OpenSSL's server reports tickets sent that it no longer writes.
                auto* out = SSL_get_wbio(ssl.get());
                for (auto before = BIO_number_written(out); !stopping_; before = sent) {
                    if (SSL_new_session_ticket(ssl.get()) != 1 || SSL_do_handshake(ssl.get()) != 1) break;
                    sent = BIO_number_written(out);
                    if (sent == before) break;
                }
            } else {
                answer_renegotiating(ssl.get(), fd);
            }
        }
        ERR_clear_error();
    }

    static bool read_request(SSL* ssl) {
        std::string request;
        char buf[1024];
        while (request.find("\r\n\r\n") == std::string::npos) {
            int n = SSL_read(ssl, buf, sizeof buf);
            if (n <= 0) return false;
            request.append(buf, static_cast<std::size_t>(n));
        }
        return true;
    }

    // [0,0,...,0] in 21 chunks, with a HelloRequest before each but the first; a renegotiation the
    // client takes up is run to its end before the next chunk.
    static void answer_renegotiating(SSL* ssl, int fd) {
        auto write = [&](std::string_view s) {
            return SSL_write(ssl, s.data(), int(s.size())) == int(s.size());
        };
        if (!write("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: "
                   "chunked\r\n\r\n3\r\n[0,\r\n"))
            return;
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        for (int i = 0; i < 20; ++i) {
            if (SSL_renegotiate(ssl) != 1) return;
            SSL_do_handshake(ssl);  // sends the HelloRequest
            auto const until = std::chrono::steady_clock::now() + 2s;
            while (SSL_renegotiate_pending(ssl) && std::chrono::steady_clock::now() < until) {
                pollfd p{fd, POLLIN, 0};
                ::poll(&p, 1, 50);
                char buf[256];
                if (SSL_read(ssl, buf, sizeof buf) <= 0) {
                    auto const e = SSL_get_error(ssl, -1);
                    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) return;  // refused: an alert
                }
            }
            if (!write(i == 19 ? "2\r\n0]\r\n0\r\n\r\n" : "2\r\n0,\r\n")) return;
        }
    }

    script script_;
    net::io_context ioc_{1};
    tcp::acceptor acceptor_{ioc_, {net::ip::make_address("127.0.0.1"), 0}};
    std::uint16_t port_ = acceptor_.local_endpoint().port();
    std::mutex m_;
    std::atomic<bool> stopping_{false};
    int peer_fd_ = -1;
    std::thread thread_;
};

// One fetch of `s` with no deadline (as wg and channel fetch without a service timeout), on a loop
// of its own; nullopt if it has not ended after 10 s.
std::optional<fanout::fetch_result> fetch_without_deadline(fanout::service s) {
    net::io_context ioc;
    fanout::client c{ioc.get_executor(), {std::move(s)}, {}};
    std::optional<fanout::fetch_result> out;
    net::co_spawn(ioc, c.fetch(0), [&](std::exception_ptr e, fanout::fetch_result r) {
        if (!e) out = std::move(r);
        ioc.stop();
    });
    ioc.run_for(10s);
    return out;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(test_tls)

BOOST_AUTO_TEST_CASE(a_verified_upstream_answers_over_tls) {
    tls_loop loop{good_sim(), trusting_test_ca()};
    auto r = loop.fetch();
    BOOST_TEST_REQUIRE(r.ok(), r.error->message);
    BOOST_TEST(r.body == std::string(fanout::sim_body("echo")));
    BOOST_TEST(loop.upstream().tls_full == 1u);
    BOOST_TEST(loop.upstream().tls_sni == 0u);  // the URL's host is an address: no SNI
}

BOOST_AUTO_TEST_CASE(server_name_is_the_name_sent_and_verified) {
    for (auto name : {"localhost", "upstream.test"}) {
        tls_loop loop{good_sim(), {.ca_file = pki().ca_cert(), .server_name = name}};
        auto r = loop.fetch();
        BOOST_TEST(r.ok(), name << ": " << (r.ok() ? "" : r.error->message));
        BOOST_TEST(loop.upstream().tls_sni == 1u);
    }
    tls_loop loop{good_sim(), {.ca_file = pki().ca_cert(), .server_name = "other.test"}};
    check_tls_failure(loop.fetch(), "host name mismatch");
}

BOOST_AUTO_TEST_CASE(a_pooled_connection_needs_no_new_handshake) {
    tls_loop loop{good_sim(), trusting_test_ca()};
    for (int i = 0; i < 5; ++i) BOOST_TEST_REQUIRE(loop.fetch().ok());
    BOOST_TEST(loop.upstream().connections == 1u);
    BOOST_TEST(loop.upstream().tls_full + loop.upstream().tls_resumed == 1u);
    BOOST_TEST(loop.client.stats().reused == 4u);
    BOOST_TEST(loop.client.stats().tls_full == 1u);
    // Three at once open three connections, one handshake each; three more reuse them.
    for (int round = 0; round < 2; ++round) {
        auto [a, b, c] = loop.run(loop.client.fetch(0) && loop.client.fetch(0) && loop.client.fetch(0));
        BOOST_TEST((a.ok() && b.ok() && c.ok()));
    }
    BOOST_TEST(loop.upstream().connections == 3u);
    BOOST_TEST(loop.upstream().tls_full + loop.upstream().tls_resumed == 3u);
    BOOST_TEST(loop.client.stats().tls_full + loop.client.stats().tls_resumed == 3u);
}

// A reload's client (made with the previous one) keeps an https service's pooled connections and
// TLS session while its files hold the same bytes; once one was rewritten, it starts afresh with
// the files as they are now (a certificate rotated in place is taken up), and the retired client's
// idle connection is closed.
BOOST_AUTO_TEST_CASE(a_reload_keeps_tls_state_until_its_files_change) {
    auto const ca = (pki().dir() / "reload-ca.pem").string();
    std::filesystem::copy_file(pki().ca_cert(), ca, std::filesystem::copy_options::overwrite_existing);
    tls_loop loop{good_sim(), {.ca_file = ca}};
    BOOST_TEST_REQUIRE(loop.fetch().ok());
    std::vector<fanout::service> const services{tls_loop::service(loop.sim, {.ca_file = ca})};
    fanout::client same{loop.ioc.get_executor(), services, {}, loop.client};
    loop.client.retire(same);
    auto const kept = loop.run(same.fetch(0));
    BOOST_TEST_REQUIRE(kept.ok(), kept.error->message);
    BOOST_TEST((kept.connection == fanout::connection_use::reused));
    BOOST_TEST(same.idle_connections(0) == 1u);

    std::ofstream{ca, std::ios::app} << "\n";  // other bytes, the same trust
    fanout::client rotated{loop.ioc.get_executor(), services, {}, same};
    same.retire(rotated);
    BOOST_TEST(same.idle_connections(0) == 0u);  // closed at once
    auto const fresh = loop.run(rotated.fetch(0));
    BOOST_TEST_REQUIRE(fresh.ok(), fresh.error->message);
    BOOST_TEST((fresh.connection == fanout::connection_use::opened));
    BOOST_TEST(loop.upstream().connections == 2u);
    BOOST_TEST(loop.upstream().tls_full == 2u);  // the old context's session is not offered
    BOOST_TEST(rotated.stats().opened == 2u);    // the counts go on from the first client's
}

BOOST_AUTO_TEST_CASE(bytes_arriving_on_an_idle_tls_connection_keep_it_out_of_use) {
    auto s = good_sim();
    s.behaviour = fanout::sim_behaviour::unsolicited;  // a second answer 5 ms after the first
    tls_loop loop{s, trusting_test_ca()};
    BOOST_TEST_REQUIRE(loop.fetch().ok());
    BOOST_TEST_REQUIRE(loop.until([&] { return loop.upstream().unsolicited == 1u; }));
    auto r = loop.fetch();
    BOOST_TEST_REQUIRE(r.ok(), r.error->message);
    BOOST_TEST(r.body == std::string(fanout::sim_body("echo")));  // not the unsolicited answer
    BOOST_TEST(loop.client.stats().retried == 1u);
    BOOST_TEST(loop.upstream().connections == 2u);
}

BOOST_AUTO_TEST_CASE(a_new_connection_resumes_the_last_session) {
    tls_loop loop{good_sim(), trusting_test_ca()};
    BOOST_TEST_REQUIRE(loop.fetch().ok());
    for (int i = 0; i < 3; ++i) {
        loop.client.close_idle();
        BOOST_TEST_REQUIRE(loop.fetch().ok());
    }
    BOOST_TEST(loop.upstream().connections == 4u);
    BOOST_TEST(loop.upstream().tls_full == 1u);
    BOOST_TEST(loop.upstream().tls_resumed == 3u);
    BOOST_TEST(loop.client.stats().tls_full == 1u);
    BOOST_TEST(loop.client.stats().tls_resumed == 3u);
}

BOOST_AUTO_TEST_CASE(a_tls_1_2_session_resumes_too) {
    auto s = good_sim();
    s.tls_1_2_only = true;
    tls_loop loop{s, trusting_test_ca()};
    BOOST_TEST_REQUIRE(loop.fetch().ok());
    for (int i = 0; i < 2; ++i) {
        loop.client.close_idle();
        BOOST_TEST_REQUIRE(loop.fetch().ok());
    }
    BOOST_TEST(loop.upstream().tls_full == 1u);
    BOOST_TEST(loop.upstream().tls_resumed == 2u);
}

BOOST_AUTO_TEST_CASE(an_answer_cut_short_over_tls_is_a_protocol_failure_and_not_resent) {
    auto s = good_sim();
    s.behaviour = fanout::sim_behaviour::close_early;  // a head promising more body, then a close
    tls_loop loop{s, trusting_test_ca()};
    auto r = loop.fetch();
    BOOST_TEST_REQUIRE(!r.ok());
    BOOST_TEST((r.error->kind == error_kind::protocol), r.error->message);
    BOOST_TEST(loop.upstream().requests == 1u);
}

BOOST_AUTO_TEST_CASE(a_connection_closed_during_the_handshake_is_a_connect_failure) {
    echo_upstream closing;
    closing.counters().drop_next = 1;
    auto url = closing.url("/x");
    url.replace(0, 4, "https");
    net::io_context ioc;
    fanout::client c{ioc.get_executor(), {fanout::make_service("echo", url)}, {}};
    auto f = net::co_spawn(ioc, c.fetch(0), net::use_future);
    ioc.run();
    auto r = f.get();
    BOOST_TEST_REQUIRE(!r.ok());
    BOOST_TEST((r.error->kind == error_kind::connect), r.error->message);  // so max_retries applies
}

BOOST_AUTO_TEST_CASE(an_unknown_issuer_is_a_tls_failure) {
    {
        tls_loop loop{good_sim(), {.ca_file = pki().other_ca_cert()}};
        check_tls_failure(loop.fetch(), "unknown issuer");
        BOOST_TEST(loop.until([&] { return loop.upstream().tls_failed == 1u; }));
        BOOST_TEST(loop.upstream().requests == 0u);
    }
    tls_loop loop{good_sim(), {}};  // the system's trust store, which does not know the test CA
    check_tls_failure(loop.fetch(), "unknown issuer");
}

BOOST_AUTO_TEST_CASE(an_expired_certificate_is_a_tls_failure) {
    tls_loop loop{tls_sim(pki().expired_cert(), pki().expired_key()), trusting_test_ca()};
    check_tls_failure(loop.fetch(), "certificate expired");
}

BOOST_AUTO_TEST_CASE(a_certificate_for_another_name_is_a_tls_failure) {
    tls_loop loop{tls_sim(pki().wrong_name_cert(), pki().wrong_name_key()), trusting_test_ca()};
    check_tls_failure(loop.fetch(), "host name mismatch");
    BOOST_TEST(loop.upstream().requests == 0u);
}

BOOST_AUTO_TEST_CASE(insecure_skip_verify_accepts_any_certificate) {
    for (auto [cert, key] :
         {std::pair{pki().wrong_name_cert(), pki().wrong_name_key()},
          std::pair{pki().expired_cert(), pki().expired_key()}}) {
        tls_loop loop{tls_sim(cert, key), {.insecure_skip_verify = true}};
        auto r = loop.fetch();
        BOOST_TEST(r.ok(), cert << ": " << (r.ok() ? "" : r.error->message));
    }
}

BOOST_AUTO_TEST_CASE(mutual_tls_with_the_client_certificate_asked_for) {
    auto tls = trusting_test_ca();
    tls.client_cert = pki().client_cert();
    tls.client_key = pki().client_key();
    tls_loop loop{good_sim(pki().ca_cert()), tls};
    auto r = loop.fetch();
    BOOST_TEST(r.ok(), (r.ok() ? "" : r.error->message));
    BOOST_TEST(loop.upstream().tls_full == 1u);
}

BOOST_AUTO_TEST_CASE(mutual_tls_without_a_client_certificate_is_a_tls_failure) {
    tls_loop loop{good_sim(pki().ca_cert()), trusting_test_ca()};
    check_tls_failure(loop.fetch(), "certificate required");
    BOOST_TEST(loop.upstream().answered == 0u);
}

BOOST_AUTO_TEST_CASE(a_plain_http_answer_to_a_tls_handshake_is_a_tls_failure) {
    silent_upstream plain{"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n"};
    auto s = fanout::make_service("echo", plain.url());
    net::io_context ioc;
    fanout::client c{ioc.get_executor(), {s}, {}};
    auto f = net::co_spawn(ioc, c.fetch(0), net::use_future);
    ioc.run();
    auto r = f.get();
    BOOST_TEST_REQUIRE(!r.ok());
    BOOST_TEST((r.error->kind == error_kind::tls), r.error->message);
    BOOST_TEST(r.error->message.find("handshake failure") != std::string::npos, r.error->message);
}

BOOST_AUTO_TEST_CASE(a_hung_handshake_ends_with_the_fetch_and_its_connection_is_closed) {
    silent_upstream silent;
    auto s = fanout::make_service("silent", silent.url());
    net::io_context ioc;
    fanout::client c{ioc.get_executor(), {s}, {}};
    auto f = net::co_spawn(ioc, fetch_within(c, 200ms), net::use_future);
    auto const start = std::chrono::steady_clock::now();
    ioc.run();
    BOOST_TEST(!f.get().has_value());
    BOOST_TEST((std::chrono::steady_clock::now() - start < 2s));
    BOOST_TEST(eventually([&] { return silent.closed == 1; }));
    BOOST_TEST(c.idle_connections(0) == 0u);
    BOOST_TEST(c.stats().tls_full + c.stats().tls_resumed == 0u);
}

BOOST_AUTO_TEST_CASE(a_hung_handshake_is_a_timeout_at_the_deadline) {
    silent_upstream silent;
    harness h{{sim("users")}, {}, {fanout::make_service("silent", silent.url())}};
    auto a = get(h.port(), "/api/aggregate/channel-with-context-timeout?timeout_ms=300");
    BOOST_TEST(a.status == 200u);
    BOOST_TEST(kind_of(a, "silent") == "timeout");
    BOOST_TEST(kind_of(a, "users") == "ok");
    BOOST_TEST(a.took.count() >= 300);
    BOOST_TEST(a.took.count() < 2000);
    BOOST_TEST(eventually([&] { return silent.closed == 1; }));
}

BOOST_AUTO_TEST_CASE(a_cancelled_fetch_closes_its_tls_connection) {
    // A plain connection would settle: its answer comes well within settle_time.
    tls_loop loop{good_sim("", 500ms), trusting_test_ca(), {.settle_time = 2000ms}};
    BOOST_TEST(!loop.run(fetch_within(loop.client, 200ms)).has_value());
    BOOST_TEST(loop.until([&] { return loop.upstream().abandoned == 1u; }));
    BOOST_TEST(loop.client.idle_connections(0) == 0u);
    BOOST_TEST(loop.client.stats().settled_closed == 1u);
    BOOST_TEST(loop.client.stats().settled_kept == 0u);
}

BOOST_AUTO_TEST_CASE(handshake_records_without_end_are_a_tls_failure) {
    raw_tls_upstream flood{raw_tls_upstream::script::hello_requests};
    auto r = fetch_without_deadline(fanout::make_service("flood", flood.url()));
    BOOST_TEST_REQUIRE(r.has_value());
    BOOST_TEST_REQUIRE(!r->ok());
    BOOST_TEST((r->error->kind == error_kind::tls), r->error->message);
    BOOST_TEST(r->error->message.find("handshake larger than") != std::string::npos, r->error->message);
    BOOST_TEST(eventually([&] { return flood.ended.load(); }));  // the client closed the connection
    BOOST_TEST(flood.sent < 64u * 1024 * 1024);
}

BOOST_AUTO_TEST_CASE(a_handshake_has_a_time_limit_of_its_own) {
    // One HelloRequest every 20 ms: a handshake that goes on, within the size bound, until stopped.
    raw_tls_upstream slow{raw_tls_upstream::script::hello_requests_slowly};
    auto s = fanout::make_service("slow", slow.url());
    s.tls->handshake_timeout = 300ms;
    auto const start = std::chrono::steady_clock::now();
    auto r = fetch_without_deadline(s);
    BOOST_TEST_REQUIRE(r.has_value());
    BOOST_TEST_REQUIRE(!r->ok());
    BOOST_TEST((r->error->kind == error_kind::timeout), r->error->message);
    BOOST_TEST(r->error->message.find("not done within 300 ms") != std::string::npos, r->error->message);
    BOOST_TEST((std::chrono::steady_clock::now() - start >= 300ms));
    BOOST_TEST(eventually([&] { return slow.ended.load(); }));

    silent_upstream silent;
    s = fanout::make_service("silent", silent.url());
    s.tls->handshake_timeout = 200ms;
    r = fetch_without_deadline(s);
    BOOST_TEST_REQUIRE(r.has_value());
    BOOST_TEST_REQUIRE(!r->ok());
    BOOST_TEST((r->error->kind == error_kind::timeout), r->error->message);
    BOOST_TEST(eventually([&] { return silent.closed == 1; }));
}

BOOST_AUTO_TEST_CASE(session_tickets_without_end_are_a_tls_failure) {
    raw_tls_upstream flood{raw_tls_upstream::script::session_tickets};
    auto const s = trusting("flood", flood.url());
    auto r = fetch_without_deadline(s);
    BOOST_TEST_REQUIRE(r.has_value());
    BOOST_TEST_REQUIRE(!r->ok());
    BOOST_TEST((r->error->kind == error_kind::tls), r->error->message);
    BOOST_TEST(r->error->message.find("after the handshake") != std::string::npos, r->error->message);
    BOOST_TEST(eventually([&] { return flood.ended.load(); }));
    BOOST_TEST(flood.sent < 64u * 1024 * 1024);
}

BOOST_AUTO_TEST_CASE(a_wg_request_ends_against_session_tickets_without_end) {
    raw_tls_upstream flood{raw_tls_upstream::script::session_tickets};
    auto const s = trusting("flood", flood.url());
    harness h{{sim("users")}, {}, {s}};
    auto a = get(h.port(), "/api/aggregate/wg");  // no deadline
    BOOST_TEST(a.status == 200u);
    BOOST_TEST(kind_of(a, "flood") == "tls");
    BOOST_TEST(kind_of(a, "users") == "ok");
    BOOST_TEST(eventually([&] { return flood.ended.load(); }));
}

BOOST_AUTO_TEST_CASE(renegotiation_is_refused) {
    raw_tls_upstream renegotiating{raw_tls_upstream::script::renegotiation};
    auto const s = trusting("renegotiating", renegotiating.url());
    auto r = fetch_without_deadline(s);
    BOOST_TEST_REQUIRE(r.has_value());
    BOOST_TEST(eventually([&] { return renegotiating.ended.load(); }));
    BOOST_TEST(renegotiating.client_hellos == 1);  // the handshake, and no renegotiation
    BOOST_TEST_REQUIRE(!r->ok());
    BOOST_TEST((r->error->kind == error_kind::tls), r->error->message);
    BOOST_TEST(r->error->message.find("renegotiation refused") != std::string::npos, r->error->message);
}

BOOST_AUTO_TEST_CASE(handshakes_are_exported_per_service) {
    fanout::options opts;
    opts.upstreams.push_back(fanout::make_service("echo", "https://127.0.0.1/"));
    opts.upstreams.back().tls = trusting_test_ca();
    harness h{{good_sim()}, opts};
    for (int i = 0; i < 4; ++i) BOOST_TEST(kind_of(get(h.port(), "/api/aggregate/wg"), "echo") == "ok");
    auto const page = fetch(h.port(), "/metrics")->body();
    auto const full = metric(page, R"(fanout_upstream_tls_handshakes_total{service="echo",outcome="full"})");
    auto const resumed =
        metric(page, R"(fanout_upstream_tls_handshakes_total{service="echo",outcome="resumed"})");
    BOOST_TEST(full >= 1);
    BOOST_TEST(full + resumed == metric(page, R"(fanout_upstream_connections_opened_total{service="echo"})"));
    BOOST_TEST(full + resumed == double(h.counters("echo").connections));
}

BOOST_AUTO_TEST_CASE(skipping_verification_is_logged_at_start) {
    fanout::options opts;
    captured_events events;
    events.attach(opts);
    opts.upstreams.push_back(fanout::make_service("echo", "https://127.0.0.1/"));
    opts.upstreams.back().tls = fanout::tls_settings{.insecure_skip_verify = true};
    harness h{{good_sim()}, opts};
    BOOST_TEST(kind_of(get(h.port(), "/api/aggregate/wg"), "echo") == "ok");
    auto lines = events.with("tls_verification_off");
    BOOST_TEST_REQUIRE(lines.size() == 1u);
    BOOST_TEST(lines[0].find(R"("service":"echo")") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(https_settings_in_the_config_file) {
    auto const ca = pki().ca_cert();
    auto config = [](std::string url, std::string extra) {
        return R"({"upstreams":[{"name":"a","url":")" + url + "\"" + extra + "}]}";
    };
    fanout::options o;
    fanout::apply_config(
        o,
        config(
            "https://api.example:8443/v1",
            R"(,"ca_file":")" + ca + R"(","client_cert":")" + pki().client_cert() + R"(","client_key":")" +
                pki().client_key() +
                R"(","server_name":"internal.example","insecure_skip_verify":false,"tls_handshake_timeout_ms":2500)"
        )
    );
    BOOST_TEST_REQUIRE(o.upstreams.size() == 1u);
    auto const& s = o.upstreams[0];
    BOOST_TEST_REQUIRE(s.tls.has_value());
    BOOST_TEST(s.port == 8443);
    BOOST_TEST(s.tls->ca_file == ca);
    BOOST_TEST(s.tls->server_name == "internal.example");
    BOOST_TEST(!s.tls->insecure_skip_verify);
    BOOST_TEST(s.tls->handshake_timeout.count() == 2500);
    BOOST_TEST(fanout::make_service("b", "https://api.example/").tls->handshake_timeout.count() == 10000);
    BOOST_TEST(fanout::make_service("b", "https://api.example/").port == 443);

    auto error = [&](std::string text) {
        fanout::options bad;
        try {
            fanout::apply_config(bad, text);
        } catch (std::invalid_argument const& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    auto const on_http = error(config("http://api.example/", R"(,"ca_file":")" + ca + "\""));
    BOOST_TEST(on_http.find("upstreams[0].ca_file: only for https://") != std::string::npos, on_http);
    auto const missing = error(config("https://api.example/", R"(,"ca_file":"/nonexistent/ca.pem")"));
    BOOST_TEST(missing.find("upstreams[0].ca_file: cannot read") != std::string::npos, missing);
    auto const alone = error(config("https://api.example/", R"(,"client_cert":")" + ca + "\""));
    BOOST_TEST(alone.find("client_cert and client_key go together") != std::string::npos, alone);
    auto const zone = error(config("https://api.example/", R"(,"server_name":"fe80::1%eth0")"));
    BOOST_TEST(zone.find("upstreams[0].server_name: expected a host name") != std::string::npos, zone);
    auto const both =
        error(config("https://api.example/", R"(,"insecure_skip_verify":true,"ca_file":")" + ca + "\""));
    BOOST_TEST(both.find("ca_file has no use with insecure_skip_verify") != std::string::npos, both);
    auto const zero = error(config("https://api.example/", R"(,"tls_handshake_timeout_ms":0)"));
    BOOST_TEST(zero.find("upstreams[0].tls_handshake_timeout_ms") != std::string::npos, zero);
    auto const plain = error(config("http://api.example/", R"(,"tls_handshake_timeout_ms":100)"));
    BOOST_TEST(plain.find("only for https://") != std::string::npos, plain);
    auto const flag = error(config("https://api.example/", R"(,"insecure_skip_verify":"yes")"));
    BOOST_TEST(
        flag.find("upstreams[0].insecure_skip_verify: expected true or false") != std::string::npos, flag
    );
}

BOOST_AUTO_TEST_CASE(a_trust_store_that_cannot_be_loaded_fails_at_start) {
    auto const not_pem = (pki().dir() / "not-a-certificate.pem").string();
    std::ofstream(not_pem) << "not a certificate\n";
    auto s = fanout::make_service("echo", "https://127.0.0.1/");
    s.tls->ca_file = not_pem;
    net::io_context ioc;
    try {
        fanout::client c{ioc.get_executor(), {s}, {}};
        BOOST_FAIL("no error");
    } catch (std::invalid_argument const& e) {
        std::string what = e.what();
        BOOST_TEST(what.find("service 'echo': ca_file") != std::string::npos, what);
    }
}

BOOST_AUTO_TEST_SUITE_END()
