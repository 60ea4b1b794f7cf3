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

namespace fanout {

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
        service_addresses addresses;
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

    void refresh_if_due(std::size_t index, steady_clock::time_point now) {
        auto& e = entries[index];
        auto const what = e.addresses.due(now);
        if (what == service_addresses::to_do::nothing) return;
        if (what == service_addresses::to_do::give_up_and_resolve) {
            if (e.resolver) e.resolver->cancel();
            wake_waiting();
        }
        start(index, now);
    }

    void start(std::size_t index, steady_clock::time_point now) {
        auto& e = entries[index];
        auto const generation = e.addresses.generation();
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
                resolve(e.addresses.host(), e.addresses.port(), std::move(done));
                return;
            }
            if (!e.resolver) e.resolver.emplace(ex);
            e.resolver->async_resolve(
                e.addresses.host(), std::to_string(e.addresses.port()), tcp::resolver::numeric_service,
                [done = std::move(done)](error_code ec, tcp::resolver::results_type const& results) {
                    std::vector<tcp::endpoint> endpoints;
                    for (auto const& r : results) endpoints.push_back(r.endpoint());
                    done(ec, std::move(endpoints));
                }
            );
        } catch (...) {
            e.addresses.start_failed(now);
            throw;
        }
    }

    void take(
        std::size_t index, std::uint64_t generation, error_code ec, std::vector<tcp::endpoint> endpoints
    ) {
        if (entries[index].addresses.answer(generation, ec, std::move(endpoints), steady_clock::now()))
            wake_waiting();
    }

    // The next address in turn that is not in `tried`, preferring those not skipped.
    std::optional<tcp::endpoint> pick(std::size_t index, std::span<tcp::endpoint const> tried) {
        auto const now = steady_clock::now();
        refresh_if_due(index, now);
        return entries[index].addresses.pick(now, tried);
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
    s.entries.reserve(services.size());
    bool named = false;
    for (auto const& svc : services) {
        s.entries.push_back({service_addresses{svc.host, svc.port, options}, std::nullopt});
        named = named || !s.entries.back().addresses.literal();
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
            auto const& e = st->entries[i].addresses;
            if (e.resolved_once()) continue;
            // As next() would: starts a resolution due (none was), gives up one unanswered too long.
            st->refresh_if_due(i, now);
            if (e.resolved_once()) continue;
            done = false;
            wake = std::min(wake, e.next_due());
        }
        if (done) break;
        timer.expires_at(wake);
        co_await timer.async_wait(net::as_tuple(net::use_awaitable));
    }
    for (auto const& e : st->entries)
        if (e.addresses.endpoints().empty())
            co_return e.addresses.error() ? e.addresses.error() : error_code{net::error::host_not_found};
    co_return error_code{};
}

net::awaitable<error_code> address_book::first_resolutions() {
    return wait_first_resolutions(state_);
}

std::optional<tcp::endpoint> address_book::next(std::size_t service_index) {
    return state_->pick(service_index, {});
}

void address_book::carry(std::size_t service_index, address_book const& from, std::size_t from_index) {
    auto& e = state_->entries[service_index];
    if (e.resolver) e.resolver->cancel();
    e.addresses = from.state_->entries[from_index].addresses.carried(state_->options);
    state_->wake_waiting();
}

void address_book::refused(std::size_t service_index, tcp::endpoint const& address) {
    state_->entries[service_index].addresses.refused(address, steady_clock::now());
}

std::size_t address_book::size(std::size_t service_index) const noexcept {
    return state_->entries[service_index].addresses.endpoints().size();
}

std::span<tcp::endpoint const> address_book::addresses(std::size_t service_index) const noexcept {
    return state_->entries[service_index].addresses.endpoints();
}

std::string address_book::why_none(std::size_t service_index) const {
    auto const& e = state_->entries[service_index].addresses;
    if (!e.endpoints().empty()) return {};
    if (e.error()) return "cannot resolve " + e.host() + ": " + e.error().message();
    return "resolving " + e.host();
}

resolve_stats address_book::stats(std::size_t service_index) const noexcept {
    return state_->entries[service_index].addresses.stats();
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
        auto const ec_last = state_->entries[service_index].addresses.error();
        ec = ec_last ? ec_last : error_code{net::error::host_not_found_try_again};
    }
    error_code ignored;
    socket.close(ignored);
    co_return ec;
}

}  // namespace fanout
