#pragma once

#include <boost/asio/append.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstddef>
#include <fanout/service.hpp>
#include <memory>
#include <optional>
#include <string>

namespace fanout {

// What a TLS connection may read without getting anywhere, which neither OpenSSL nor a fetch's
// deadline bounds (wg and channel fetches may have none): its handshake, in time and in bytes, and
// the handshake messages a server may send after it (session tickets, key updates, renegotiation
// requests), in bytes per answer. OpenSSL reports each record and message as it reads them;
// guarded_socket refuses to read once a bound is passed, so a peer that sends without pause is
// stopped at the next read, whether or not a cancellation reaches the read.
class tls_guard {
  public:
    enum class stop { none, handshake_time, handshake_bytes, post_handshake_bytes };

    // A full handshake is a few KiB; OpenSSL alone accepts certificate chains up to 100 KiB.
    static constexpr std::size_t max_handshake_bytes = 256 * 1024;
    // Servers send one to a few session tickets of some hundred bytes each after a handshake.
    static constexpr std::size_t max_post_handshake_bytes = 64 * 1024;

    void start_handshake(std::chrono::steady_clock::time_point deadline) noexcept;
    void end_handshake() noexcept;
    // A request is sent: the handshake messages that come with its answer are counted afresh.
    void expect_answer() noexcept;
    // Why reading stops (the handshake's deadline is looked at now); once stopped, for good.
    stop stopped() noexcept;
    // Whether the server asked for a renegotiation (refused) since the request was sent.
    bool renegotiation_asked() const noexcept { return renegotiation_asked_; }

    // For SSL_set_msg_callback, with the guard as its argument.
    static void on_message(
        int write_p, int version, int content_type, void const* buf, std::size_t len, SSL* ssl, void* arg
    );

  private:
    std::optional<std::chrono::steady_clock::time_point> handshake_deadline_;  // set during it
    std::size_t read_ = 0;  // bytes of records during the handshake, of handshake messages after it
    stop stopped_ = stop::none;
    bool renegotiation_asked_ = false;
};

// The socket under a TLS stream: the connection's own, whose reads fail once `guard` says stop.
// (The connection owns the socket, so plain and TLS connections share the pool's socket checks.)
class guarded_socket {
  public:
    using executor_type = boost::asio::ip::tcp::socket::executor_type;
    using lowest_layer_type = boost::asio::ip::tcp::socket::lowest_layer_type;

    explicit guarded_socket(boost::asio::ip::tcp::socket& socket) noexcept : socket_(socket) {}
    guarded_socket(guarded_socket const&) = delete;  // OpenSSL holds the guard's address
    guarded_socket& operator=(guarded_socket const&) = delete;

    executor_type get_executor() noexcept { return socket_.get_executor(); }
    lowest_layer_type& lowest_layer() noexcept { return socket_.lowest_layer(); }
    lowest_layer_type const& lowest_layer() const noexcept { return socket_.lowest_layer(); }

    template <class MutableBufferSequence, class ReadToken>
    auto async_read_some(MutableBufferSequence const& buffers, ReadToken&& token) {
        return boost::asio::async_initiate<ReadToken, void(boost::system::error_code, std::size_t)>(
            [this](auto handler, MutableBufferSequence const& into) {
                auto const why = guard.stopped();
                if (why == tls_guard::stop::none) return socket_.async_read_some(into, std::move(handler));
                // Completes as a failed read would: later, never inside this call.
                auto const ec = why == tls_guard::stop::handshake_time ? boost::asio::error::timed_out
                                                                       : boost::asio::error::message_size;
                boost::asio::post(
                    socket_.get_executor(),
                    boost::asio::append(std::move(handler), boost::system::error_code(ec), std::size_t{0})
                );
            },
            token, buffers
        );
    }

    template <class ConstBufferSequence, class WriteToken>
    auto async_write_some(ConstBufferSequence const& buffers, WriteToken&& token) {
        return socket_.async_write_some(buffers, std::forward<WriteToken>(token));
    }

    tls_guard guard;

  private:
    boost::asio::ip::tcp::socket& socket_;
};

using tls_stream = boost::asio::ssl::stream<guarded_socket>;

// One https:// service's TLS client side, in one client (so per event loop): its trust store and
// client certificate, the name it verifies, and the last session the service issued, with which
// new connections resume instead of doing a full handshake.
class tls_client {
  public:
    // Throws std::invalid_argument naming the setting that cannot be loaded.
    explicit tls_client(service const& svc);
    tls_client(tls_client const&) = delete;
    tls_client& operator=(tls_client const&) = delete;
    ~tls_client();

    // A stream over `socket`, ready for its handshake: SNI, the name to verify, a session to resume,
    // its guard told of what it reads.
    std::unique_ptr<tls_stream> wrap(boost::asio::ip::tcp::socket& socket);
    // The service's tls_settings::handshake_timeout.
    std::chrono::milliseconds handshake_timeout() const noexcept { return handshake_timeout_; }

    // What a failed handshake says: unknown issuer, certificate expired, host name mismatch, ...
    std::string why_failed(tls_stream& stream, boost::system::error_code ec) const;

    // Whether the files the service's settings name (ca_file, client_cert, client_key) hold what
    // they held when this was made: a new configuration keeps this side only if they do, so that
    // a certificate rotated in place is taken up by a reload.
    bool same_files(service const& svc) const;

    static bool resumed(tls_stream& stream) noexcept;
    // Whether the stream holds bytes (decrypted or not) that the socket no longer shows.
    static bool has_buffered(tls_stream& stream) noexcept;

  private:
    static int on_new_session(SSL* ssl, SSL_SESSION* session);

    boost::asio::ssl::context context_;
    std::string name_;  // sent as SNI (unless an IP address) and verified
    bool name_is_address_ = false;
    bool verify_ = true;
    std::chrono::milliseconds handshake_timeout_;
    SSL_SESSION* session_ = nullptr;  // owned: the newest the service issued
    std::string files_;               // what the files held once loaded (see same_files)
};

}  // namespace fanout
