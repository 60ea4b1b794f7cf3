#include "upstream/address_book.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/errc.hpp>

#include <algorithm>
#include <utility>
#include <vector>

namespace fanout::upstream {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using boost::system::error_code;
using std::chrono::steady_clock;

namespace {

// Failures that say something about this address only: another one of the service may work.
bool address_specific(error_code ec) {
    return ec == net::error::connection_refused || ec == net::error::host_unreachable ||
           ec == net::error::network_unreachable || ec == net::error::address_family_not_supported ||
           ec == boost::system::errc::address_not_available || ec == net::error::timed_out;
}

}  // namespace

struct address_book::state : std::enable_shared_from_this<state> {
    struct entry {
        std::string host;
        std::uint16_t port = 0;
        bool literal = false;  // one address, never resolved
        std::vector<tcp::endpoint> endpoints;
        std::vector<steady_clock::time_point> skip_until;  // of each endpoint: passed over until then
        std::size_t cursor = 0;                            // where next() looks first
        bool resolving = false;
        std::uint64_t generation = 0;  // of the last resolution started
        std::uint64_t taken = 0;       // of the last answer taken
        steady_clock::time_point started;
        steady_clock::time_point due;  // when a resolution may start (none under way)
        error_code error;              // of the last resolution that failed, until one succeeds
        resolve_stats stats;
        std::optional<tcp::resolver> resolver;  // Asio's, without a resolve function
    };

    net::any_io_executor ex;  // not tracking work: nothing here keeps run() from returning
    resolve_function resolve;
    address_book_options options;
    std::vector<entry> entries;
    // The timers of first_resolutions() under way, cancelled to wake them when something changed.
    std::vector<net::steady_timer*> waiting;
    bool destroyed = false;  // the book is gone: its waits end

    void wake_waiting() {
        for (auto* t : waiting) t->cancel();
    }

    // The service's first resolution has ended (an answer, or given up), or it needs none.
    bool resolved_once(entry const& e) const noexcept {
        return e.literal || e.stats.succeeded + e.stats.failed > 0;
    }

    steady_clock::time_point after(steady_clock::time_point now, std::chrono::milliseconds wait) const {
        return wait.count() == 0 ? steady_clock::time_point::max() : now + wait;
    }

    void refresh_if_due(std::size_t index, steady_clock::time_point now) {
        auto& e = entries[index];
        if (e.literal) return;
        if (e.resolving) {
            if (now - e.started < options.give_up) return;
            // Never answered (a custom resolver lost it, or a DNS server hangs): ask again.
            e.resolving = false;
            ++e.stats.failed;
            e.error = net::error::timed_out;
            if (e.resolver) e.resolver->cancel();
            wake_waiting();
        } else if (now < e.due) {
            return;
        }
        start(index, now);
    }

    void start(std::size_t index, steady_clock::time_point now) {
        auto& e = entries[index];
        e.resolving = true;
        e.started = now;
        auto const generation = ++e.generation;
        // Whatever thread it is called on, the answer is taken on the executor, and only if the book
        // still exists.
        resolve_handler done = [self = weak_from_this(), ex = ex, index,
                                generation](error_code ec, std::vector<tcp::endpoint> endpoints) {
            net::post(ex, [self, index, generation, ec, endpoints = std::move(endpoints)]() mutable {
                if (auto s = self.lock()) s->take(index, generation, ec, std::move(endpoints));
            });
        };
        try {
            if (resolve) {
                resolve(e.host, e.port, std::move(done));
                return;
            }
            if (!e.resolver) e.resolver.emplace(ex);
            e.resolver->async_resolve(
                e.host, std::to_string(e.port), tcp::resolver::numeric_service,
                [done = std::move(done)](error_code ec, tcp::resolver::results_type const& results) {
                    std::vector<tcp::endpoint> endpoints;
                    for (auto const& r : results) endpoints.push_back(r.endpoint());
                    done(ec, std::move(endpoints));
                }
            );
        } catch (...) {
            e.resolving = false;
            e.due = after(now, options.retry);
            throw;
        }
    }

    void take(
        std::size_t index, std::uint64_t generation, error_code ec, std::vector<tcp::endpoint> endpoints
    ) {
        auto& e = entries[index];
        bool const current = e.resolving && generation == e.generation;
        if (!ec && endpoints.empty()) ec = net::error::host_not_found;
        // A second answer, one older than the last taken, or the failure of one given up (counted then).
        if (generation <= e.taken || (!current && ec)) return;
        e.taken = generation;
        if (current) e.resolving = false;
        wake_waiting();
        auto const now = steady_clock::now();
        if (ec) {
            ++e.stats.failed;
            e.error = ec;
            e.due = after(now, e.endpoints.empty() ? options.retry : options.refresh);
            return;
        }
        ++e.stats.succeeded;
        e.error = {};
        e.due = after(now, options.refresh);
        std::vector<tcp::endpoint> unique;
        for (auto const& ep : endpoints)
            if (std::find(unique.begin(), unique.end(), ep) == unique.end()) unique.push_back(ep);
        // An address that stays keeps its skip period.
        std::vector<steady_clock::time_point> skip(unique.size());
        for (std::size_t i = 0; i < unique.size(); ++i) {
            auto old = std::find(e.endpoints.begin(), e.endpoints.end(), unique[i]);
            if (old != e.endpoints.end()) skip[i] = e.skip_until[old - e.endpoints.begin()];
        }
        e.endpoints = std::move(unique);
        e.skip_until = std::move(skip);
        e.cursor %= e.endpoints.size();
    }

    // The next address in turn that is not in `tried`, preferring those not skipped.
    std::optional<tcp::endpoint> pick(std::size_t index, std::span<tcp::endpoint const> tried) {
        auto const now = steady_clock::now();
        refresh_if_due(index, now);
        auto& e = entries[index];
        auto const n = e.endpoints.size();
        std::optional<std::size_t> best;
        for (std::size_t k = 0; k < n; ++k) {
            auto const i = (e.cursor + k) % n;
            if (std::find(tried.begin(), tried.end(), e.endpoints[i]) != tried.end()) continue;
            if (e.skip_until[i] <= now) {
                best = i;
                break;
            }
            if (!best || e.skip_until[i] < e.skip_until[*best]) best = i;
        }
        if (!best) return std::nullopt;
        e.cursor = (*best + 1) % n;
        return e.endpoints[*best];
    }

    void mark(std::size_t index, tcp::endpoint const& address, steady_clock::time_point until) {
        auto& e = entries[index];
        auto it = std::find(e.endpoints.begin(), e.endpoints.end(), address);
        if (it != e.endpoints.end()) e.skip_until[it - e.endpoints.begin()] = until;
    }
};

address_book::address_book(
    net::any_io_executor ex,
    std::span<service const> services,
    resolve_function resolve,
    address_book_options options
)
    : state_(std::make_shared<state>()) {
    auto& s = *state_;
    s.ex = net::prefer(std::move(ex), net::execution::outstanding_work.untracked);
    s.resolve = std::move(resolve);
    s.options = options;
    s.entries.resize(services.size());
    bool named = false;
    for (std::size_t i = 0; i < services.size(); ++i) {
        auto& e = s.entries[i];
        e.host = services[i].host;
        e.port = services[i].port;
        error_code ec;
        auto const literal = net::ip::make_address(e.host, ec);
        if (ec) {
            named = true;
            continue;
        }
        e.literal = true;
        e.endpoints = {tcp::endpoint{literal, e.port}};
        e.skip_until.resize(1);
    }
    // From the executor, so that a resolve function is only ever called there.
    if (named)
        net::post(s.ex, [self = std::weak_ptr<state>(state_)] {
            if (auto st = self.lock()) {
                auto const now = steady_clock::now();
                for (std::size_t i = 0; i < st->entries.size(); ++i) st->refresh_if_due(i, now);
            }
        });
}

address_book::~address_book() {
    for (auto& e : state_->entries)
        if (e.resolver) e.resolver->cancel();
    state_->destroyed = true;
    state_->wake_waiting();
}

// Holds the book's state (not the book), so that the book may go while it waits.
net::awaitable<error_code> address_book::wait_first_resolutions(std::shared_ptr<state> st) {
    net::steady_timer timer{co_await net::this_coro::executor};
    // Off the list however the frame ends (also destroyed unfinished with its io_context).
    struct listed {
        std::vector<net::steady_timer*>& list;
        net::steady_timer* t;
        listed(std::vector<net::steady_timer*>& l, net::steady_timer* p) : list(l), t(p) {
            list.push_back(t);
        }
        ~listed() { std::erase(list, t); }
    } on_list{st->waiting, &timer};
    for (;;) {
        // A wake-up cancels the timer too: only the coroutine's own state says it was cancelled.
        auto const cs = co_await net::this_coro::cancellation_state;
        if (st->destroyed || cs.cancelled() != net::cancellation_type::none)
            co_return net::error::operation_aborted;
        auto const now = steady_clock::now();
        auto wake = steady_clock::time_point::max();
        bool done = true;
        for (std::size_t i = 0; i < st->entries.size(); ++i) {
            auto& e = st->entries[i];
            if (st->resolved_once(e)) continue;
            // As next() would: starts a resolution due (none was), gives up one unanswered too long.
            st->refresh_if_due(i, now);
            if (st->resolved_once(e)) continue;
            done = false;
            wake = std::min(wake, e.resolving ? e.started + st->options.give_up : e.due);
        }
        if (done) break;
        timer.expires_at(wake);
        co_await timer.async_wait(net::as_tuple(net::use_awaitable));
    }
    for (auto const& e : st->entries)
        if (e.endpoints.empty()) co_return e.error ? e.error : error_code{net::error::host_not_found};
    co_return error_code{};
}

net::awaitable<error_code> address_book::first_resolutions() {
    return wait_first_resolutions(state_);
}

std::optional<tcp::endpoint> address_book::next(std::size_t service_index) {
    return state_->pick(service_index, {});
}

void address_book::refused(std::size_t service_index, tcp::endpoint const& address) {
    state_->mark(service_index, address, steady_clock::now() + state_->options.skip);
}

std::size_t address_book::size(std::size_t service_index) const noexcept {
    return state_->entries[service_index].endpoints.size();
}

std::span<tcp::endpoint const> address_book::addresses(std::size_t service_index) const noexcept {
    return state_->entries[service_index].endpoints;
}

std::string address_book::why_none(std::size_t service_index) const {
    auto const& e = state_->entries[service_index];
    if (!e.endpoints.empty()) return {};
    if (e.error) return "cannot resolve " + e.host + ": " + e.error.message();
    return "resolving " + e.host;
}

resolve_stats address_book::stats(std::size_t service_index) const noexcept {
    return state_->entries[service_index].stats;
}

net::awaitable<error_code> address_book::connect(tcp::socket& socket, std::size_t service_index) {
    std::vector<tcp::endpoint> tried;
    error_code ec;
    for (;;) {
        // Checked here, so that a cancelled connect returns a value instead of the next co_await throwing.
        auto cs = co_await net::this_coro::cancellation_state;
        if (cs.cancelled() != net::cancellation_type::none) {
            ec = net::error::operation_aborted;
            break;
        }
        auto address = state_->pick(service_index, tried);
        if (!address) break;
        error_code ignored;
        socket.close(ignored);  // a socket whose connect failed is not used again
        auto [cec] = co_await socket.async_connect(*address, net::as_tuple(net::use_awaitable));
        if (!cec) co_return cec;
        ec = cec;
        if (!address_specific(cec)) break;
        refused(service_index, *address);
        tried.push_back(*address);
    }
    if (!ec && tried.empty()) {
        auto const& e = state_->entries[service_index];
        ec = e.error ? e.error : error_code{net::error::host_not_found_try_again};
    }
    error_code ignored;
    socket.close(ignored);
    co_return ec;
}

}  // namespace fanout::upstream
