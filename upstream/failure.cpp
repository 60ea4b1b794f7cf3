#include "upstream/failure.hpp"

#include "upstream/pool.hpp"

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/beast/http/error.hpp>

#include <algorithm>
#include <string>

namespace fanout {

namespace net = boost::asio;
namespace http = boost::beast::http;
using boost::system::error_code;

fetch_result cancelled_result() {
    return make_failure(error_kind::cancelled, "cancelled");
}

fetch_result connect_failure(error_code ec, service const& svc) {
    if (ec == net::error::operation_aborted) return cancelled_result();
    return make_failure(error_kind::connect, "cannot connect to " + svc.host_header + ": " + ec.message());
}

fetch_result exchange_failure(error_code ec, client_options const& limits, service const& svc) {
    if (ec == net::error::operation_aborted) return cancelled_result();
    // An alert after the handshake: with TLS 1.3 a server rejects a client certificate only then.
    if (ec.category() == net::error::get_ssl_category())
        return make_failure(error_kind::tls, "TLS with " + svc.host_header + ": " + ec.message());
    if (ec == http::error::body_limit)
        return make_failure(
            error_kind::too_large, "body larger than " + std::to_string(limits.max_body) + " bytes"
        );
    if (ec == http::error::header_limit)
        return make_failure(
            error_kind::protocol, "response head larger than " + std::to_string(limits.max_head) + " bytes"
        );
    if (ec == http::error::buffer_overflow)
        return make_failure(
            error_kind::protocol,
            "chunk-size line or trailer section larger than " + std::to_string(limits.max_head) + " bytes"
        );
    if (ec == http::error::end_of_stream || ec == http::error::partial_message || ec == net::error::eof ||
        ec == net::error::connection_reset || ec == net::error::broken_pipe)
        return make_failure(error_kind::protocol, "connection closed before a complete response");
    return make_failure(error_kind::protocol, "malformed response: " + ec.message());
}

bool closed_while_idle(error_code ec) {
    return ec == http::error::end_of_stream || ec == net::error::eof || ec == net::error::connection_reset ||
           ec == net::error::broken_pipe;
}

fetch_result exchange_failure(
    connection& conn, error_code ec, client_options const& limits, service const& svc
) {
    if (conn.tls && ec != net::error::operation_aborted) {
        auto& guard = conn.tls->next_layer().guard;
        if (guard.stopped() == tls_guard::stop::post_handshake_bytes)
            return make_failure(
                error_kind::tls, "TLS with " + svc.host_header + ": more than " +
                                     std::to_string(tls_guard::max_post_handshake_bytes) +
                                     " bytes of handshake messages after the handshake (session tickets, "
                                     "key updates, renegotiation requests) for one answer"
            );
        if (guard.renegotiation_asked() && ec.category() == net::error::get_ssl_category())
            return make_failure(
                error_kind::tls,
                "TLS with " + svc.host_header + ": renegotiation refused (" + ec.message() + ")"
            );
    }
    return exchange_failure(ec, limits, svc);
}

fetch_result circuit_open_failure(circuit_breaker const& b, std::chrono::steady_clock::time_point now) {
    if (b.state() != breaker_state::open)
        return make_failure(error_kind::circuit_open, "circuit half-open; a probe is under way");
    auto const left = std::chrono::ceil<std::chrono::milliseconds>(b.probe_at() - now).count();
    return make_failure(
        error_kind::circuit_open,
        "circuit open; next try in " + std::to_string(std::max<std::int64_t>(left, 0)) + " ms"
    );
}

fetch_error opening_failure(fetch_result const& r) {
    if (r.error->kind != error_kind::cancelled) return *r.error;
    auto const ms = std::chrono::duration_cast<std::chrono::milliseconds>(r.elapsed).count();
    return {error_kind::timeout, "no answer within " + std::to_string(ms) + " ms"};
}

fetch_result cancelled_or_rethrow(std::exception_ptr e) {
    try {
        std::rethrow_exception(e);
    } catch (boost::system::system_error const& se) {
        if (se.code() != net::error::operation_aborted) throw;
    }
    return cancelled_result();
}

}  // namespace fanout
