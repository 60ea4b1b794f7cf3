#pragma once

#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <optional>

namespace fanout {

// A service's recent latencies, for a quantile (service::hedge_quantile): buckets 10% wide from
// 50 µs to about 9 s (longer ones count in the last), in two halves of a sliding window, so that a sample
// counts for between `half` and 2 × `half` samples. One per service and client (event loop): no locking.
class latency_histogram {
  public:
    using duration = std::chrono::steady_clock::duration;

    // Fewer samples than this say too little about a tail: quantile() is empty until then.
    static constexpr std::uint32_t min_samples = 100;
    static constexpr std::uint32_t half = 1000;

    void add(duration d) noexcept {
        ++current_[bucket_of(d)];
        if (++current_count_ == half) {
            previous_ = current_;
            previous_count_ = current_count_;
            current_ = {};
            current_count_ = 0;
        }
        // A quantile moves slowly: computed again every few samples, not for each hedge decision.
        if (++since_computed_ >= 16 || current_count_ + previous_count_ == min_samples) compute();
    }

    // The upper bound of the bucket holding quantile q of the window (so slightly above the true
    // value): empty with fewer than min_samples.
    std::optional<duration> quantile() const noexcept { return cached_; }

    void set_quantile(double q) noexcept { q_ = q; }

  private:
    static constexpr std::size_t buckets = 128;
    static constexpr double first_bound_us = 50.0, growth = 1.1;

    static std::size_t bucket_of(duration d) noexcept {
        double const us = std::chrono::duration<double, std::micro>(d).count();
        if (us <= first_bound_us) return 0;
        auto const i = static_cast<std::size_t>(std::ceil(std::log(us / first_bound_us) / std::log(growth)));
        return i < buckets ? i : buckets - 1;
    }

    static duration upper_bound(std::size_t i) noexcept {
        return std::chrono::duration_cast<duration>(std::chrono::duration<double, std::micro>(
            first_bound_us * std::pow(growth, static_cast<double>(i))
        ));
    }

    void compute() noexcept {
        since_computed_ = 0;
        auto const total = current_count_ + previous_count_;
        if (total < min_samples) return;
        auto const rank = static_cast<std::uint64_t>(std::ceil(q_ * total));
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < buckets; ++i) {
            seen += current_[i] + previous_[i];
            if (seen >= rank) {
                cached_ = upper_bound(i);
                return;
            }
        }
    }

    std::array<std::uint32_t, buckets> current_{}, previous_{};
    std::uint32_t current_count_ = 0, previous_count_ = 0, since_computed_ = 0;
    double q_ = 0.95;
    std::optional<duration> cached_;
};

}  // namespace fanout
