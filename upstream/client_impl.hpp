#pragma once

// The state behind a client, shared by the files that implement it: client.cpp (construction, the
// public calls), attempt.cpp (one request: pool, connect, TLS, write, read, breaker) and
// resilient_fetch.cpp (hedging and retries around attempts). Not installed.

#include "upstream/address_book.hpp"
#include "upstream/latency_histogram.hpp"
#include "upstream/policy.hpp"
#include "upstream/pool.hpp"
#include "upstream/request.hpp"
#include "upstream/tls.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <fanout/client.hpp>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace fanout {

// One service's hedging and retry state, in its client (so per event loop).
struct resilience_state {
    latency_histogram latencies;  // of successful requests, for service::hedge_quantile
    request_budget hedges, retries;
};

// What one service's fetches build up, shared by the clients of successive configurations that
// leave the service as it was (see the constructor with a previous client): its TLS side and
// idle connections, its circuit breaker, budgets and latencies.
struct service_state {
    service_state(service const& svc, std::size_t max_idle)
        : tls(svc.tls ? std::make_unique<tls_client>(svc) : nullptr),
          pool(max_idle),
          breaker(svc.breaker_failures, svc.breaker_cooldown) {
        if (svc.hedge_quantile) resilience.latencies.set_quantile(*svc.hedge_quantile);
    }

    std::unique_ptr<tls_client> tls;  // null for http://; before the pool, whose connections use it
    connection_pool pool;
    circuit_breaker breaker;
    resilience_state resilience;
};

struct client::impl {
    boost::asio::any_io_executor ex;
    std::vector<service> services;
    client_options options;
    std::vector<std::string> requests;  // the request head of each service; empty: built per fetch
    std::vector<std::shared_ptr<service_state>> states;  // one per service
    std::minstd_rand jitter{std::random_device{}()};
    // Shared with the clients this one carried over from, and those that carry over from it.
    std::shared_ptr<pool_stats> stats = std::make_shared<pool_stats>();
    std::vector<connection_pool*> pools;  // of `states`, for idle_checks
    std::optional<idle_check> idle_checks;

    // The service's most recently pooled connection if nothing arrived on it while idle (`use`:
    // reused); else null (`use`: retried, the connection closed) or null without any.
    std::unique_ptr<connection> take_pooled(std::size_t index, connection_use& use);
    // The state a service's breaker entered, if it entered one, to options.on_breaker; `failure`:
    // the one that opened it.
    void report(
        std::size_t index, std::optional<breaker_state> entered, fetch_error const* failure = nullptr
    );

    std::optional<address_book> book;  // the services' addresses, names resolved in the background
    boost::asio::awaitable<boost::system::error_code> connect(
        boost::asio::ip::tcp::socket& sock, std::size_t index
    );
    // The TLS handshake of a new connection to an https:// service; false: failed, as `out` says.
    // (A result written through `out` keeps it out of the caller's frame, which Asio recycles
    // only up to about 1 KiB.)
    boost::asio::awaitable<bool> handshake(std::size_t index, connection& conn, fetch_result& out);
    // Before a request: the breaker's admission at `now`. False: refused, as `out` says; `probe`:
    // this request is the half-open circuit's probe.
    bool admit(std::size_t index, std::chrono::steady_clock::time_point now, bool& probe, fetch_result& out);
    // After a request begun at `start`: its elapsed time set, its outcome judged and told to the
    // breaker and options.on_request.
    void record(
        std::size_t index,
        fetch_result& out,
        fetch_headers const& headers,
        bool lost_race,
        bool probe,
        std::chrono::steady_clock::time_point start
    );
    // One request. `head`: the request's head when the service's target has placeholders; else empty.
    // `settle`: a cancellation after the request was written leaves the connection to settle().
    // `lost_race`: of a hedged pair (see hedge_race::decided); null: a fetch of its own.
    boost::asio::awaitable<fetch_result> attempt(
        std::size_t index, std::string head, fetch_headers headers, bool const* lost_race = nullptr
    );
    // A cancelled fetch's connection, its request written: read the rest of the answer in the
    // background within options.settle_time and settle_bytes, then pool it; else close it.
    void settle(std::size_t index, std::unique_ptr<connection> conn);
    void settled(std::size_t index, std::unique_ptr<connection> conn, bool kept);
    boost::asio::awaitable<void> settle_in_background(
        std::shared_ptr<bool> client_alive,
        std::size_t index,
        std::unique_ptr<connection> conn,
        std::chrono::milliseconds time,
        std::size_t max_head,
        std::uint64_t max_body
    );
    std::shared_ptr<bool> alive = std::make_shared<bool>(true);  // false once the client is gone
    // A fetch of a service with hedging or retries: one or more attempts.
    boost::asio::awaitable<fetch_result> resilient_fetch(
        std::size_t index, std::string head, fetch_headers headers
    );
    // An attempt and, after `delay`, a second one unless the first has completed: the first success.
    boost::asio::awaitable<fetch_result> hedged(
        std::size_t index,
        std::string const& head,
        fetch_headers const& headers,
        std::chrono::steady_clock::duration delay,
        fetch_attempts& attempts
    );
    // The second request of a hedged pair, sent after `delay` when the budget allows.
    boost::asio::awaitable<fetch_result> hedge(
        std::size_t index,
        std::string const& head,
        fetch_headers const& headers,
        std::chrono::steady_clock::duration delay,
        hedge_race& race
    );
};

}  // namespace fanout
