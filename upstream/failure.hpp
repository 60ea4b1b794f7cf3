#pragma once

// What a failed exchange with an upstream is, as the fetch_result its caller, the metrics and the
// logs read: a kind and a message naming the service and the limit or error.

#include "upstream/policy.hpp"

#include <boost/system/error_code.hpp>

#include <chrono>
#include <exception>
#include <fanout/client.hpp>

namespace fanout {

struct connection;

fetch_result cancelled_result();

fetch_result connect_failure(boost::system::error_code ec, service const& svc);

// A write or read that failed with `ec`: cancelled, a limit of `limits` exceeded, TLS refused, or
// an answer malformed or cut short.
fetch_result exchange_failure(boost::system::error_code ec, client_options const& limits, service const& svc);

// The exchange on `conn` failed with `ec`: as exchange_failure says, unless its TLS guard stopped
// it or the server had asked for a renegotiation (refused, which an OpenSSL server answers with a
// fatal alert).
fetch_result exchange_failure(
    connection& conn, boost::system::error_code ec, client_options const& limits, service const& svc
);

// A pooled connection may have been closed by the upstream while idle; the first exchange on it
// then fails this way before any byte of a response, and a GET can safely be sent again.
bool closed_while_idle(boost::system::error_code ec);

fetch_result circuit_open_failure(circuit_breaker const& b, std::chrono::steady_clock::time_point now);

// The failure that opened a breaker: the request's own, or a timeout for one cut at its deadline
// (as the breaker took it).
fetch_error opening_failure(fetch_result const& r);

// An attempt run by co_spawn that threw: cancelled as it was about to start (Asio's awaitables
// throw then), or anything else, rethrown.
fetch_result cancelled_or_rethrow(std::exception_ptr e);

}  // namespace fanout
