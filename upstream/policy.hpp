#pragma once

// What the client decides without doing I/O: its circuit breakers, the budgets of extra requests,
// when to hedge and when to retry. Each function that depends on time is given `now`, so a test
// drives them with time points of its own, without sockets or sleeps.

#include "upstream/latency_histogram.hpp"

#include <boost/asio/cancellation_type.hpp>

#include <chrono>
#include <exception>
#include <fanout/client.hpp>
#include <optional>

namespace fanout {

using time_point = std::chrono::steady_clock::time_point;
using duration = std::chrono::steady_clock::duration;

// Whether a fetch's outcome speaks against its service: nullopt when it says nothing either way
// (cancelled by us before its deadline, or not tried).
std::optional<bool> failed_upstream(
    fetch_result const& r, std::optional<time_point> deadline, time_point now
);

// How a request that ended as `r` counts (client_options::on_request), as of `now`, when it ended.
// A cancelled one: a hedge's loser (`lost_race`), else for the reason its caller gave (`cause`),
// else a timeout of the service's own if cut at or after `timeout_at`, else cut by the request's
// deadline if at or after `deadline`, else the client gone.
struct request_verdict {
    request_outcome outcome = request_outcome::ok;
    error_kind kind = error_kind::timeout;              // for request_outcome::error
    cancel_reason reason = cancel_reason::client_gone;  // for request_outcome::cancelled
};
request_verdict judge_request(
    fetch_result const& r,
    bool lost_race,
    std::optional<cancel_reason> cause,
    std::optional<time_point> timeout_at,
    std::optional<time_point> deadline,
    time_point now
) noexcept;

// One service's circuit breaker (service::breaker_failures), in its client (so per event loop).
// Each call that changes the state says so (`entered`): the client reports it (on_breaker).
class circuit_breaker {
  public:
    // `failures_to_open` consecutive failures open it, for `cooldown`; at least 1.
    circuit_breaker(unsigned failures_to_open, duration cooldown) noexcept
        : failures_to_open_(failures_to_open), cooldown_(cooldown) {}

    struct admission {
        bool admitted = false;
        bool probe = false;                    // the fetch is the half-open probe
        std::optional<breaker_state> entered;  // open gave way to half-open
    };
    // Whether a fetch may go to the service now.
    admission admit(time_point now);

    // A fetch admitted earlier ended: `failed` as failed_upstream() says, `probe` as admit() said.
    // The state entered, if the outcome set one (possibly the same again).
    std::optional<breaker_state> record(std::optional<bool> failed, bool probe, time_point now);

    breaker_state state() const noexcept { return state_; }
    // The failures in a row that last opened it: breaker_failures, or 1 for a failed probe.
    unsigned opened_after() const noexcept { return opened_after_; }
    // Open: when a fetch may probe. Half-open: when a probe that never reported gives way.
    time_point probe_at() const noexcept { return probe_at_; }

  private:
    breaker_state enter(breaker_state state, time_point now);

    unsigned failures_to_open_;
    duration cooldown_;
    breaker_state state_ = breaker_state::closed;
    unsigned failures_ = 0;  // consecutive, while closed
    time_point probe_at_;
    bool probing_ = false;  // half-open: the probe is under way
    unsigned opened_after_ = 0;
};

// Finagle's budget for extra requests (hedges, retries): each fetch deposits `ratio` of a token and
// an extra request takes a whole one, so extra requests stay below `ratio` of the fetches; at most
// 100 fetches' worth is saved, and `min_per_s` extra requests a second are allowed in any case.
class request_budget {
  public:
    void deposit(double ratio) noexcept;
    bool take(unsigned min_per_s, time_point now) noexcept;

  private:
    double tokens_ = 0;
    time_point window_;  // of the current second, for min_per_s
    unsigned used_in_window_ = 0;
};

bool hedges(service const& svc) noexcept;

// The delay after which a fetch sends a second request: hedge_after, or the quantile of the
// service's latencies when known (never below hedge_after); nullopt when the fetch is not to be
// hedged: no delay, the breaker not closed (the one half-open probe is the request: a hedge would
// only meet circuit_open), or the hedge would be due at or after the deadline.
std::optional<duration> hedge_delay(
    service const& svc,
    latency_histogram const& latencies,
    bool breaker_closed,
    std::optional<time_point> deadline,
    time_point now
);

// A failure that left the upstream nothing to answer: a GET may be sent again.
bool retryable(fetch_result const& r) noexcept;

// The wait before sending a fetch again after `r`, `done` retries made so far: nullopt when it is
// not to be sent again (not retryable, service::max_retries reached, or the wait would end at or
// past the deadline). `jitter` is from 0.5 to 1.5: clients failed together do not retry together.
// The budget is the caller's to take, once it has seen the fetch was not cancelled meanwhile.
std::optional<duration> retry_backoff(
    service const& svc,
    fetch_result const& r,
    unsigned done,
    double jitter,
    std::optional<time_point> deadline,
    time_point now
);

// Whether a hedged pair is decided by a request's completion (the parallel group's cancellation
// condition): a success wins; a failure decides only if the second request was not sent and was
// not declined (so the first request's failure ends the wait for the hedge delay).
struct hedge_race {
    bool sent = false;      // the second request was sent
    bool declined = false;  // it was due, but over budget: the first request decides alone
    // The pair is decided and the other request is cancelled as the loser: its connection is
    // closed, not settled (a cancellation from outside the pair settles as any other).
    bool decided = false;
    int completed = 0;

    struct first_success {
        hedge_race* race;
        boost::asio::cancellation_type_t operator()(std::exception_ptr const& e, fetch_result const& r)
            const noexcept {
            if (++race->completed == 2)
                return boost::asio::cancellation_type::none;  // nothing left to cancel
            race->decided = (!e && r.ok()) || !(race->sent || race->declined);
            return race->decided ? boost::asio::cancellation_type::terminal
                                 : boost::asio::cancellation_type::none;
        }
    };
};

}  // namespace fanout
