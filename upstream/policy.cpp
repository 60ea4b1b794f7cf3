#include "upstream/policy.hpp"

#include <algorithm>

namespace fanout {

std::optional<bool> failed_upstream(
    fetch_result const& r, std::optional<time_point> deadline, time_point now
) {
    if (r.ok()) return false;
    switch (r.error->kind) {
        case error_kind::cancelled:
            if (deadline && now >= *deadline) return true;
            return std::nullopt;
        case error_kind::circuit_open:
            return std::nullopt;
        case error_kind::status:
            return r.error->status >= 500;
        default:
            return true;
    }
}

request_verdict judge_request(
    fetch_result const& r,
    bool lost_race,
    std::optional<cancel_reason> cause,
    std::optional<time_point> timeout_at,
    std::optional<time_point> deadline,
    time_point now
) noexcept {
    if (r.ok()) return {};
    if (r.error->kind != error_kind::cancelled) return {request_outcome::error, r.error->kind};
    auto cancelled = [](cancel_reason why) {
        return request_verdict{request_outcome::cancelled, error_kind::cancelled, why};
    };
    if (lost_race) return cancelled(cancel_reason::hedge_lost);
    if (cause) return cancelled(*cause);
    if (timeout_at && now >= *timeout_at) return {request_outcome::error, error_kind::timeout};
    if (deadline && now >= *deadline) return cancelled(cancel_reason::deadline);
    return cancelled(cancel_reason::client_gone);
}

breaker_state circuit_breaker::enter(breaker_state state, time_point now) {
    state_ = state;
    probing_ = false;
    if (state == breaker_state::open) probe_at_ = now + cooldown_;
    if (state != breaker_state::half_open) failures_ = 0;
    return state;
}

circuit_breaker::admission circuit_breaker::admit(time_point now) {
    admission a;
    if (state_ == breaker_state::open && now >= probe_at_) a.entered = enter(breaker_state::half_open, now);
    if (state_ == breaker_state::closed) {
        a.admitted = true;
        return a;
    }
    // A probe that never reported (its coroutine destroyed, or it threw) gives way after a cooldown.
    if (state_ == breaker_state::open || (probing_ && now < probe_at_)) return a;
    probing_ = a.probe = a.admitted = true;
    probe_at_ = now + cooldown_;
    return a;
}

std::optional<breaker_state> circuit_breaker::record(std::optional<bool> failed, bool probe, time_point now) {
    if (probe) {
        if (!failed) {
            probing_ = false;  // no verdict: the next fetch probes
            return std::nullopt;
        }
        if (*failed) opened_after_ = 1;
        return enter(*failed ? breaker_state::open : breaker_state::closed, now);
    }
    if (state_ == breaker_state::closed && failed) {
        failures_ = *failed ? failures_ + 1 : 0;
        if (failures_ >= failures_to_open_) {
            opened_after_ = failures_;
            return enter(breaker_state::open, now);
        }
    }
    return std::nullopt;
}

void request_budget::deposit(double ratio) noexcept {
    tokens_ = std::min(tokens_ + ratio, std::max(1.0, 100 * ratio));
}

bool request_budget::take(unsigned min_per_s, time_point now) noexcept {
    if (min_per_s) {
        if (now - window_ >= std::chrono::seconds(1)) {
            window_ = now;
            used_in_window_ = 0;
        }
        if (used_in_window_ < min_per_s) {
            ++used_in_window_;
            return true;
        }
    }
    if (tokens_ < 1) return false;
    tokens_ -= 1;
    return true;
}

bool hedges(service const& svc) noexcept {
    return svc.hedge_after || svc.hedge_quantile;
}

std::optional<duration> hedge_delay(
    service const& svc,
    latency_histogram const& latencies,
    bool breaker_closed,
    std::optional<time_point> deadline,
    time_point now
) {
    std::optional<duration> delay = svc.hedge_after;
    if (svc.hedge_quantile)
        if (auto q = latencies.quantile()) delay = delay ? std::max(*delay, *q) : *q;
    if (!delay || !breaker_closed || (deadline && now + *delay >= *deadline)) return std::nullopt;
    return delay;
}

bool retryable(fetch_result const& r) noexcept {
    return !r.ok() && !r.answer_started &&
           (r.error->kind == error_kind::connect || r.error->kind == error_kind::protocol);
}

std::optional<duration> retry_backoff(
    service const& svc,
    fetch_result const& r,
    unsigned done,
    double jitter,
    std::optional<time_point> deadline,
    time_point now
) {
    if (!retryable(r) || done >= svc.max_retries) return std::nullopt;
    // Doubling with each retry.
    auto const backoff = std::chrono::duration_cast<duration>(svc.retry_backoff * (1 << done) * jitter);
    if (deadline && now + backoff >= *deadline) return std::nullopt;
    return backoff;
}

}  // namespace fanout
