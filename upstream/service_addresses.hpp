#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace fanout {

struct address_book_options {
    // Addresses older than this are resolved again, in the background, when next asked for;
    // 0: resolved at start only (until a first resolution succeeds, it is retried as below).
    std::chrono::milliseconds refresh = std::chrono::seconds{30};
    // While a service has no address yet, a failed resolution is tried again after this, not refresh.
    std::chrono::milliseconds retry = std::chrono::seconds{1};
    // An address that refused a connection (or was unreachable) is passed over for this long.
    std::chrono::milliseconds skip = std::chrono::seconds{2};
    // A resolution unanswered for this long is given up (its error: timed_out) and another one
    // starts when an address is next asked for; a late answer with addresses is still taken.
    std::chrono::milliseconds give_up = std::chrono::seconds{10};
};

struct resolve_stats {
    std::uint64_t succeeded = 0;  // answers with addresses
    std::uint64_t failed = 0;     // errors, empty answers and resolutions given up
};

// One service's addresses and the schedule of their resolutions, without I/O: which address a
// connection tries next, which are passed over, when a resolution is due or given up, and which
// answers are taken. The caller resolves (address_book) and passes the time in.
class service_addresses {
  public:
    using time_point = std::chrono::steady_clock::time_point;
    using endpoint = boost::asio::ip::tcp::endpoint;

    // A host that is an IP literal has that one address and is never resolved.
    service_addresses(std::string host, std::uint16_t port, address_book_options const& options);

    enum class to_do {
        nothing,
        resolve,  // start resolution number generation()
        // the resolution under way was unanswered for give_up: counted as failed (timed_out);
        // cancel it, then start resolution number generation()
        give_up_and_resolve,
    };
    // What is due at `now`; a resolution said to start is taken as started.
    to_do due(time_point now);
    // Starting the resolution failed (the resolver threw): the next is due after `retry`.
    void start_failed(time_point now);
    // An answer to resolution number `generation`; false if it was not taken: a second answer,
    // one older than the last taken, or the failure of one given up (counted then). A failure
    // keeps the last good addresses; addresses that stay keep their skip periods.
    bool answer(
        std::uint64_t generation,
        boost::system::error_code ec,
        std::vector<endpoint> endpoints,
        time_point now
    );

    // A copy for another client's book (a new configuration's, on the same executor): the same
    // addresses and skip periods, under `options`. A resolution under way here is not awaited
    // there: the copy starts its own when next asked, as it does when the refresh interval changed.
    service_addresses carried(address_book_options const& options) const;

    // The next address in turn that is not in `tried`, preferring those not passed over at `now`
    // (else the one whose skip period ends first); nullopt without any.
    std::optional<endpoint> pick(time_point now, std::span<endpoint const> tried = {});
    // The address refused a connection or could not be reached: passed over until now + skip.
    void refused(endpoint const& address, time_point now);

    std::string const& host() const noexcept { return host_; }
    std::uint16_t port() const noexcept { return port_; }
    bool literal() const noexcept { return literal_; }
    bool resolving() const noexcept { return resolving_; }
    std::uint64_t generation() const noexcept { return generation_; }
    // The first resolution has ended (an answer, or given up), or none is needed.
    bool resolved_once() const noexcept { return literal_ || stats_.succeeded + stats_.failed > 0; }
    // When due() has something to do next: the resolution under way given up, or the next one.
    time_point next_due() const noexcept { return resolving_ ? started_ + options_.give_up : due_; }
    std::span<endpoint const> endpoints() const noexcept { return endpoints_; }
    // Of the last resolution that failed, until one succeeds.
    boost::system::error_code error() const noexcept { return error_; }
    resolve_stats stats() const noexcept { return stats_; }

  private:
    time_point after(time_point now, std::chrono::milliseconds wait) const noexcept;

    std::string host_;
    std::uint16_t port_;
    address_book_options options_;
    bool literal_ = false;
    std::vector<endpoint> endpoints_;
    std::vector<time_point> skip_until_;  // of each endpoint: passed over until then
    std::size_t cursor_ = 0;              // where pick() looks first
    bool resolving_ = false;
    std::uint64_t generation_ = 0;  // of the last resolution started
    std::uint64_t taken_ = 0;       // of the last answer taken
    time_point started_;
    time_point due_;  // when a resolution may start (none under way)
    boost::system::error_code error_;
    resolve_stats stats_;
};

}  // namespace fanout
