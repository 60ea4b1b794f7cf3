#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/system/error_code.hpp>

#include <fanout/service.hpp>
#include <memory>
#include <string>

namespace fanout::upstream {

// TLS over a connection's socket, which the connection owns (so plain and TLS connections share
// the pool's socket checks).
using tls_stream = boost::asio::ssl::stream<boost::asio::ip::tcp::socket&>;

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

    // A stream over `socket`, ready for its handshake: SNI, the name to verify, a session to resume.
    std::unique_ptr<tls_stream> wrap(boost::asio::ip::tcp::socket& socket);

    // What a failed handshake says: unknown issuer, certificate expired, host name mismatch, ...
    std::string why_failed(tls_stream& stream, boost::system::error_code ec) const;

    static bool resumed(tls_stream& stream) noexcept;
    // Whether the stream holds bytes (decrypted or not) that the socket no longer shows.
    static bool has_buffered(tls_stream& stream) noexcept;

  private:
    static int on_new_session(SSL* ssl, SSL_SESSION* session);

    boost::asio::ssl::context context_;
    std::string name_;  // sent as SNI (unless an IP address) and verified
    bool name_is_address_ = false;
    bool verify_ = true;
    SSL_SESSION* session_ = nullptr;  // owned: the newest the service issued
};

}  // namespace fanout::upstream
