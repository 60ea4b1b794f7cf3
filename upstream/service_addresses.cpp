#include "upstream/service_addresses.hpp"

#include <boost/asio/ip/address.hpp>

#include <algorithm>

namespace fanout {

namespace net = boost::asio;
using boost::system::error_code;

service_addresses::service_addresses(
    std::string host, std::uint16_t port, address_book_options const& options
)
    : host_(std::move(host)), port_(port), options_(options) {
    error_code ec;
    auto const address = net::ip::make_address(host_, ec);
    if (ec) return;
    literal_ = true;
    endpoints_ = {endpoint{address, port_}};
    skip_until_.resize(1);
}

service_addresses::time_point service_addresses::after(time_point now, std::chrono::milliseconds wait)
    const noexcept {
    return wait.count() == 0 ? time_point::max() : now + wait;
}

service_addresses::to_do service_addresses::due(time_point now) {
    if (literal_) return to_do::nothing;
    auto what = to_do::resolve;
    if (resolving_) {
        if (now - started_ < options_.give_up) return to_do::nothing;
        // Never answered (a custom resolver lost it, or a DNS server hangs): ask again.
        ++stats_.failed;
        error_ = net::error::timed_out;
        what = to_do::give_up_and_resolve;
    } else if (now < due_) {
        return to_do::nothing;
    }
    resolving_ = true;
    started_ = now;
    ++generation_;
    return what;
}

void service_addresses::start_failed(time_point now) {
    resolving_ = false;
    due_ = after(now, options_.retry);
}

bool service_addresses::answer(
    std::uint64_t generation, error_code ec, std::vector<endpoint> endpoints, time_point now
) {
    bool const current = resolving_ && generation == generation_;
    if (!ec && endpoints.empty()) ec = net::error::host_not_found;
    if (generation <= taken_ || (!current && ec)) return false;
    taken_ = generation;
    if (current) resolving_ = false;
    if (ec) {
        ++stats_.failed;
        error_ = ec;
        due_ = after(now, endpoints_.empty() ? options_.retry : options_.refresh);
        return true;
    }
    ++stats_.succeeded;
    error_ = {};
    due_ = after(now, options_.refresh);
    std::vector<endpoint> unique;
    for (auto const& ep : endpoints)
        if (std::find(unique.begin(), unique.end(), ep) == unique.end()) unique.push_back(ep);
    // An address that stays keeps its skip period.
    std::vector<time_point> skip(unique.size());
    for (std::size_t i = 0; i < unique.size(); ++i) {
        auto old = std::find(endpoints_.begin(), endpoints_.end(), unique[i]);
        if (old != endpoints_.end()) skip[i] = skip_until_[old - endpoints_.begin()];
    }
    endpoints_ = std::move(unique);
    skip_until_ = std::move(skip);
    cursor_ %= endpoints_.size();
    return true;
}

service_addresses service_addresses::carried(address_book_options const& options) const {
    auto copy = *this;
    if (copy.resolving_ || options.refresh != options_.refresh) {
        copy.resolving_ = false;
        copy.due_ = time_point{};  // due at once
    }
    copy.options_ = options;
    return copy;
}

std::optional<service_addresses::endpoint> service_addresses::pick(
    time_point now, std::span<endpoint const> tried
) {
    auto const n = endpoints_.size();
    std::optional<std::size_t> best;
    for (std::size_t k = 0; k < n; ++k) {
        auto const i = (cursor_ + k) % n;
        if (std::find(tried.begin(), tried.end(), endpoints_[i]) != tried.end()) continue;
        if (skip_until_[i] <= now) {
            best = i;
            break;
        }
        if (!best || skip_until_[i] < skip_until_[*best]) best = i;
    }
    if (!best) return std::nullopt;
    cursor_ = (*best + 1) % n;
    return endpoints_[*best];
}

void service_addresses::refused(endpoint const& address, time_point now) {
    auto it = std::find(endpoints_.begin(), endpoints_.end(), address);
    if (it != endpoints_.end()) skip_until_[it - endpoints_.begin()] = now + options_.skip;
}

}  // namespace fanout
