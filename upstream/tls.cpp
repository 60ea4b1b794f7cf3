#include "upstream/tls.hpp"

#include <boost/asio/ip/address.hpp>

#include <fstream>
#include <iterator>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdexcept>

namespace fanout {

namespace net = boost::asio;
namespace ssl = net::ssl;

namespace {

std::string openssl_error() {
    auto const code = ERR_get_error();
    ERR_clear_error();
    if (!code) return "unknown error";
    char text[256];
    ERR_error_string_n(code, text, sizeof text);
    return text;
}

// Where a context keeps its tls_client (Asio's context keeps its verify callback in the app data).
int owner_index() {
    static int const index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

std::string verify_failure(long result) {
    switch (result) {
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
        case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
        case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
        case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
            return "unknown issuer";
        case X509_V_ERR_CERT_HAS_EXPIRED:
            return "certificate expired";
        case X509_V_ERR_CERT_NOT_YET_VALID:
            return "certificate not yet valid";
        case X509_V_ERR_HOSTNAME_MISMATCH:
        case X509_V_ERR_IP_ADDRESS_MISMATCH:
            return "host name mismatch";
        default:
            return "certificate rejected";
    }
}

// The contents of the files a service's TLS settings name, each with its length before it; a file
// that cannot be read counts as empty.
std::string file_contents(tls_settings const& settings) {
    std::string out;
    for (auto const* path : {&settings.ca_file, &settings.client_cert, &settings.client_key}) {
        std::string text;
        if (!path->empty()) {
            std::ifstream in{*path, std::ios::binary};
            text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
        }
        out += std::to_string(text.size()) + ":" + text;
    }
    return out;
}

}  // namespace

void tls_guard::start_handshake(std::chrono::steady_clock::time_point deadline) noexcept {
    handshake_deadline_ = deadline;
    read_ = 0;
}

void tls_guard::end_handshake() noexcept {
    handshake_deadline_.reset();
    read_ = 0;
}

void tls_guard::expect_answer() noexcept {
    read_ = 0;
    renegotiation_asked_ = false;
}

tls_guard::stop tls_guard::stopped() noexcept {
    if (stopped_ == stop::none && handshake_deadline_ &&
        std::chrono::steady_clock::now() >= *handshake_deadline_)
        stopped_ = stop::handshake_time;
    return stopped_;
}

void tls_guard::on_message(
    int write_p, int, int content_type, void const* buf, std::size_t len, SSL*, void* arg
) {
    if (write_p) return;
    auto& self = *static_cast<tls_guard*>(arg);
    auto const* bytes = static_cast<unsigned char const*>(buf);
    if (self.handshake_deadline_) {
        // Every record, whatever it holds: a server may pad its handshake with records that
        // OpenSSL skips (HelloRequests, which a client in a handshake ignores).
        if (content_type == SSL3_RT_HEADER && len >= SSL3_RT_HEADER_LENGTH)
            self.read_ += SSL3_RT_HEADER_LENGTH + (std::size_t{bytes[3]} << 8 | bytes[4]);
        if (self.read_ > max_handshake_bytes && self.stopped_ == stop::none)
            self.stopped_ = stop::handshake_bytes;
    } else if (content_type == SSL3_RT_HANDSHAKE) {
        // OpenSSL bounds the alerts and empty records it skips, not these.
        self.read_ += len;
        if (len > 0 && bytes[0] == SSL3_MT_HELLO_REQUEST) self.renegotiation_asked_ = true;
        if (self.read_ > max_post_handshake_bytes && self.stopped_ == stop::none)
            self.stopped_ = stop::post_handshake_bytes;
    }
}

tls_client::tls_client(service const& svc)
    : context_(ssl::context::tls_client),
      handshake_timeout_(svc.tls ? svc.tls->handshake_timeout : tls_settings{}.handshake_timeout) {
    auto const& settings = svc.tls ? *svc.tls : tls_settings{};
    // Before loading: a file replaced meanwhile is then taken for changed, and loaded again, next time.
    files_ = file_contents(settings);
    auto bad = [&](std::string const& what) {
        return std::invalid_argument("service '" + svc.name + "': " + what + ": " + openssl_error());
    };
    auto* native = context_.native_handle();
    SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
    // A TLS 1.2 server's request to renegotiate is answered with a no_renegotiation alert, as Go's
    // client does: a new handshake in the middle of an answer is only something more to bound.
    SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION);
    if (settings.client_cert.empty() != settings.client_key.empty())
        throw std::invalid_argument("service '" + svc.name + "': client_cert and client_key go together");
    if (settings.insecure_skip_verify && !settings.ca_file.empty())
        throw std::invalid_argument(
            "service '" + svc.name + "': ca_file has no use with insecure_skip_verify"
        );
    verify_ = !settings.insecure_skip_verify;
    if (verify_) {
        context_.set_verify_mode(ssl::verify_peer);
        if (!settings.ca_file.empty()) {
            if (SSL_CTX_load_verify_locations(native, settings.ca_file.c_str(), nullptr) != 1)
                throw bad("ca_file '" + settings.ca_file + "'");
        } else if (SSL_CTX_set_default_verify_paths(native) != 1) {
            throw bad("the system trust store");
        }
    } else {
        context_.set_verify_mode(ssl::verify_none);
    }
    if (!settings.client_cert.empty()) {
        if (SSL_CTX_use_certificate_chain_file(native, settings.client_cert.c_str()) != 1)
            throw bad("client_cert '" + settings.client_cert + "'");
        if (SSL_CTX_use_PrivateKey_file(native, settings.client_key.c_str(), SSL_FILETYPE_PEM) != 1)
            throw bad("client_key '" + settings.client_key + "'");
        if (SSL_CTX_check_private_key(native) != 1) throw bad("client_key does not match client_cert");
    }
    name_ = settings.server_name.empty() ? svc.host : settings.server_name;
    boost::system::error_code ec;
    net::ip::make_address(name_, ec);
    name_is_address_ = !ec;
    // Set once here, where a name OpenSSL cannot check (an address with a zone, a NUL) fails at
    // start instead of leaving every certificate of a trusted CA accepted.
    if (verify_) {
        auto* param = SSL_CTX_get0_param(native);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        bool const set = name_is_address_
                             ? X509_VERIFY_PARAM_set1_ip_asc(param, name_.c_str()) == 1
                             : X509_VERIFY_PARAM_set1_host(param, name_.c_str(), name_.size()) == 1;
        if (!set) throw bad("'" + name_ + "' cannot be verified as a host name or an IP address");
    }
    if (!name_is_address_) {
        std::unique_ptr<SSL, decltype(&SSL_free)> probe{SSL_new(native), &SSL_free};
        if (!probe || SSL_set_tlsext_host_name(probe.get(), name_.c_str()) != 1)
            throw bad("'" + name_ + "' cannot be sent as SNI");
    }
    // Sessions are kept here, not in OpenSSL's cache: the newest one resumes the next connection.
    SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(native, &tls_client::on_new_session);
    SSL_CTX_set_ex_data(native, owner_index(), this);
}

bool tls_client::same_files(service const& svc) const {
    return file_contents(svc.tls ? *svc.tls : tls_settings{}) == files_;
}

tls_client::~tls_client() {
    // Connections may outlive the client (their SSL objects hold the context): no session of
    // theirs comes back here.
    auto* native = context_.native_handle();
    SSL_CTX_sess_set_new_cb(native, nullptr);
    SSL_CTX_set_ex_data(native, owner_index(), nullptr);
    if (session_) SSL_SESSION_free(session_);
}

// TLS 1.3 issues sessions after the handshake, as the first answer is read.
int tls_client::on_new_session(SSL* ssl, SSL_SESSION* session) {
    auto* self = static_cast<tls_client*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), owner_index()));
    if (!self) return 0;
    if (self->session_) SSL_SESSION_free(self->session_);
    self->session_ = session;
    return 1;  // the reference is ours
}

std::unique_ptr<tls_stream> tls_client::wrap(net::ip::tcp::socket& socket) {
    auto stream = std::make_unique<tls_stream>(socket, context_);
    auto* ssl = stream->native_handle();
    // Asio asks OpenSSL to free its record buffers whenever they are empty, which on a keep-alive
    // connection means a 16 KiB allocation and release for every request and every answer.
    SSL_clear_mode(ssl, SSL_MODE_RELEASE_BUFFERS);
    // RFC 6066: SNI names a host, never an address (checked at start). The name to verify comes
    // with the context.
    if (!name_is_address_) SSL_set_tlsext_host_name(ssl, name_.c_str());
    if (session_) SSL_set_session(ssl, session_);
    SSL_set_msg_callback(ssl, &tls_guard::on_message);
    SSL_set_msg_callback_arg(ssl, &stream->next_layer().guard);
    return stream;
}

std::string tls_client::why_failed(tls_stream& stream, boost::system::error_code ec) const {
    auto const result = SSL_get_verify_result(stream.native_handle());
    ERR_clear_error();
    if (verify_ && result != X509_V_OK)
        return verify_failure(result) + " (" + X509_verify_cert_error_string(result) + ", verifying '" +
               name_ + "')";
    return "handshake failure (" + ec.message() + ")";
}

bool tls_client::resumed(tls_stream& stream) noexcept {
    return SSL_session_reused(stream.native_handle()) == 1;
}

bool tls_client::has_buffered(tls_stream& stream) noexcept {
    auto* ssl = stream.native_handle();
    return SSL_has_pending(ssl) == 1 || BIO_pending(SSL_get_rbio(ssl)) > 0;
}

}  // namespace fanout
