#pragma once

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <fanout/client.hpp>
#include <fanout/error.hpp>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <variant>
#include <vector>

namespace spdlog {
class logger;
}

namespace fanout::server {
struct metrics_shard;
class log_limiter;
}  // namespace fanout::server

namespace fanout::handlers {

using clock = std::chrono::steady_clock;

// Counters the handlers keep; shared so that detached producers may outlive a request safely.
struct handler_stats {
    std::size_t channel_producers_live = 0;  // channel producers that have not delivered yet
};

// What the aggregate handlers of one event loop share.
struct context {
    upstream::client& client;
    server::metrics_shard* metrics = nullptr;  // null: not recorded
    std::shared_ptr<spdlog::logger> log;       // null: not logged
    std::shared_ptr<handler_stats> stats = std::make_shared<handler_stats>();
    server::log_limiter* log_limit = nullptr;  // null: every failure line is written
};

struct aggregate_request {
    std::chrono::milliseconds timeout;  // deadline of the deadline-bound patterns
    clock::time_point start = clock::now();
};

// An answer ready to be sent: status and JSON body.
struct reply {
    unsigned status = 200;
    std::string body;
    bool complete = true;  // no upstream failed (X-Aggregate-Complete)
};

// 200 when at least one service answered; otherwise 504 when all failed by timeout, else 502.
unsigned partial_status(std::span<upstream::fetch_result const> results) noexcept;

// The JSON contract of every /api/aggregate/* answer.
reply render(
    std::string_view pattern,
    std::span<upstream::service const> services,
    std::span<upstream::fetch_result const> results,
    unsigned status,
    clock::time_point start
);

// Records every fetch in the metrics, logs each failure (one JSON line each: timeouts included),
// and renders the answer.
reply finish(
    context& ctx,
    std::string_view pattern,
    std::span<upstream::fetch_result const> results,
    unsigned status,
    clock::time_point start
);

// The deadline of one service's fetch: the request's, or the service's own timeout if sooner.
clock::time_point service_deadline(upstream::service const& svc, aggregate_request const& req) noexcept;

// Fetches a service into `out` (which must outlive the awaitable); one whose own timeout is sooner
// than the request deadline races a timer of its own with `||` and fails as a timeout when it loses.
boost::asio::awaitable<void> fetch_within(
    upstream::client& client, std::size_t index, aggregate_request const& req, upstream::fetch_result& out
);

// Runs the branches concurrently, joined with `&&`; completes when all have (or one throws).
boost::asio::awaitable<void> join_all(std::vector<boost::asio::awaitable<void>> branches);

// Whether the deadline timer won a `||` race (index 1, an as_tuple'd wait) by expiring: when the whole
// request is cancelled from outside, the timer completes too, with an error, and that is no timeout.
template <class Variant>
bool deadline_expired(Variant const& winner) noexcept {
    return winner.index() == 1 && !std::get<0>(std::get<1>(winner));
}

upstream::fetch_result timeout_failure(clock::time_point start, clock::time_point deadline);

}  // namespace fanout::handlers
