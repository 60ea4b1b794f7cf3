// The client's construction (carrying state over from a previous configuration's client), its
// public calls and the initiating functions. One request is in attempt.cpp, hedging and retries in
// resilient_fetch.cpp.

#include "combinators/launch.hpp"
#include "upstream/client_impl.hpp"
#include "upstream/request.hpp"

#include <algorithm>
#include <fanout/client.hpp>
#include <optional>
#include <stdexcept>
#include <string>

namespace fanout {

namespace net = boost::asio;
using boost::system::error_code;

bool valid_field_name(std::string_view name) noexcept {
    constexpr std::string_view tchar = "!#$%&'*+-.^_`|~";
    return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [&](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               tchar.find(c) != std::string_view::npos;
    });
}

std::string_view to_string(breaker_state s) noexcept {
    switch (s) {
        case breaker_state::closed:
            return "closed";
        case breaker_state::open:
            return "open";
        case breaker_state::half_open:
            return "half_open";
    }
    return "unknown";
}

namespace {

// Throws std::invalid_argument for settings no client takes.
void check(client_options const& options, std::vector<service> const& services) {
    if (!options.deadline_header.empty() && !valid_field_name(options.deadline_header))
        throw std::invalid_argument("deadline header '" + options.deadline_header + "' is not a field name");
    for (std::size_t i = 0; i < services.size(); ++i) {
        auto const& svc = services[i];
        auto bad = [&](std::string const& what) {
            return std::invalid_argument("service '" + svc.name + "': " + what);
        };
        if (svc.hedge_quantile && !(*svc.hedge_quantile > 0 && *svc.hedge_quantile < 1))
            throw bad("hedge_quantile must be above 0 and below 1");
        if (!(svc.hedge_budget >= 0 && svc.hedge_budget <= 1)) throw bad("hedge_budget must be from 0 to 1");
        if (!(svc.retry_budget >= 0 && svc.retry_budget <= 1)) throw bad("retry_budget must be from 0 to 1");
        if (svc.max_retries > 10) throw bad("max_retries must be at most 10");
        for (std::size_t j = 0; j < i; ++j)
            if (svc.name == services[j].name)
                throw std::invalid_argument("service '" + svc.name + "' given twice");
    }
}

}  // namespace

client::client(net::any_io_executor ex, std::vector<service> services, client_options options)
    : client(std::move(ex), std::move(services), std::move(options), nullptr) {
}

client::client(
    net::any_io_executor ex, std::vector<service> services, client_options options, client& previous
)
    : client(std::move(ex), std::move(services), std::move(options), &previous) {
}

client::client(
    net::any_io_executor ex, std::vector<service> services, client_options options, client* previous
)
    : impl_(std::make_unique<impl>()) {
    check(options, services);
    impl_->ex = std::move(ex);
    impl_->options = options;
    auto* before = previous ? previous->impl_.get() : nullptr;
    if (before) impl_->stats = before->stats;
    for (auto const& svc : services)
        impl_->requests.push_back(svc.params.empty() ? request_head(svc, svc.target) : std::string());
    for (auto const& svc : services) {
        std::shared_ptr<service_state> state;
        if (auto i = previous ? previous->index_of(svc.name) : std::nullopt;
            i && before->services[*i] == svc && (!svc.tls || before->states[*i]->tls->same_files(svc))) {
            state = before->states[*i];
            state->pool.max_idle(options.max_idle_per_service);
        } else {
            state = std::make_shared<service_state>(svc, options.max_idle_per_service);
        }
        impl_->pools.push_back(&state->pool);
        impl_->states.push_back(std::move(state));
    }
    impl_->idle_checks.emplace(impl_->ex);
    impl_->services = std::move(services);
    impl_->book.emplace(
        impl_->ex, impl_->services, options.resolve, address_book_options{.refresh = options.dns_refresh}
    );
    if (!before) return;
    // A host and port that stay keep their addresses, whatever else changed: no fetch waits for
    // (or fails for want of) a resolution that the previous configuration had done already.
    for (std::size_t i = 0; i < impl_->services.size(); ++i) {
        auto const& svc = impl_->services[i];
        for (std::size_t j = 0; j < before->services.size(); ++j)
            if (before->services[j].host == svc.host && before->services[j].port == svc.port) {
                impl_->book->carry(i, *before->book, j);
                break;
            }
    }
}

void client::retire(client const& successor) noexcept {
    auto const& kept = successor.impl_->states;
    for (auto& state : impl_->states)
        if (std::find(kept.begin(), kept.end(), state) == kept.end()) state->pool.close();
}

client::~client() {
    *impl_->alive = false;  // connections still settling are closed, not pooled
}

client::executor_type client::get_executor() const noexcept {
    return impl_->ex;
}

std::span<service const> client::services() const noexcept {
    return impl_->services;
}

std::optional<std::size_t> client::index_of(std::string_view name) const noexcept {
    auto const& all = impl_->services;
    auto it = std::find_if(all.begin(), all.end(), [&](service const& s) { return s.name == name; });
    if (it == all.end()) return std::nullopt;
    return static_cast<std::size_t>(it - all.begin());
}

void client::initiate_wait_resolved(net::any_completion_handler<void(error_code)> handler) {
    detail::launch(
        impl_->ex, impl_->book->first_resolutions(), std::move(handler),
        [](auto h, std::exception_ptr e, error_code ec) {
            if (e) std::rethrow_exception(e);  // std::bad_alloc: nothing else is thrown
            std::move(h)(ec);
        }
    );
}

void client::initiate_fetch(
    net::any_completion_handler<void(fetch_result)> handler, net::awaitable<fetch_result> op
) {
    detail::launch(
        impl_->ex, std::move(op), std::move(handler),
        [](auto h, std::exception_ptr e, fetch_result r) {
            if (e) std::rethrow_exception(e);  // std::bad_alloc: upstream failures are in the result
            std::move(h)(std::move(r));
        }
    );
}

net::awaitable<fetch_result> client::fetch(
    std::size_t service_index, std::span<param const> values, fetch_context const& context
) {
    if (service_index >= impl_->services.size())
        throw std::out_of_range(
            "no service " + std::to_string(service_index) + " (the client has " +
            std::to_string(impl_->services.size()) + ")"
        );
    auto const& svc = impl_->services[service_index];
    // Built now, so that the values and the context need not outlive this call.
    std::string head;
    if (!context.target.empty())
        head = request_head(svc, context.target);
    else if (!svc.params.empty() || !context.headers.empty())
        head = request_head(svc, expand_target(svc, values));
    head += context.headers;
    fetch_headers headers{
        context.deadline, context.trace && well_formed(*context.trace) ? *context.trace : trace_context{},
        context.cause, context.timeout_at};
    // A service without hedging or retries: one attempt, with no frame around it.
    if (svc.max_retries || hedges(svc))
        return impl_->resilient_fetch(service_index, std::move(head), std::move(headers));
    return impl_->attempt(service_index, std::move(head), std::move(headers));
}

void client::close_idle() noexcept {
    for (auto& state : impl_->states) state->pool.clear();
}

pool_stats client::stats() const noexcept {
    return *impl_->stats;
}

breaker_state client::breaker(std::size_t service_index) const noexcept {
    return impl_->states[service_index]->breaker.state();
}

std::size_t client::idle_connections(std::size_t service_index) const noexcept {
    return impl_->states[service_index]->pool.idle();
}

}  // namespace fanout
