#include "server/warnings.hpp"

#include "wire/json_text.hpp"

#include <boost/asio/ip/address.hpp>

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <netdb.h>
#include <optional>
#include <sys/socket.h>
#include <thread>

namespace fanout {

namespace {

std::string key_of(std::size_t index, char const* key) {
    return "upstreams[" + std::to_string(index) + "]." + key;
}

std::string ms(std::chrono::milliseconds d) {
    return std::to_string(d.count());
}

void service_warnings(
    options const& opts, std::size_t i, fanout::service const& s, std::vector<std::string>& out
) {
    auto const name = wire::quoted_short(s.name);
    if (s.timeout && *s.timeout > opts.max_timeout)
        out.push_back(
            key_of(i, "timeout_ms") + ": " + ms(*s.timeout) + " is above max_timeout_ms (" +
            ms(opts.max_timeout) +
            "): on context-timeout and errgroup a request's deadline, at most that, always ends first; it "
            "bounds wg and channel only"
        );
    if (s.timeout && *s.timeout > opts.max_fetch)
        out.push_back(
            key_of(i, "timeout_ms") + ": " + ms(*s.timeout) + " is above max_fetch_ms (" +
            ms(opts.max_fetch) + "): every fetch ends at max_fetch_ms first"
        );
    if (s.hedge_after && s.timeout && *s.hedge_after >= *s.timeout)
        out.push_back(
            key_of(i, "hedge_after_ms") + ": " + ms(*s.hedge_after) + " is not below timeout_ms (" +
            ms(*s.timeout) + "): a fetch of " + name + " times out before its hedge is sent"
        );
    if ((s.hedge_after || s.hedge_quantile) && s.hedge_budget == 0)
        out.push_back(
            key_of(i, "hedge_budget") +
            ": 0 allows no hedge: " + (s.hedge_after ? "hedge_after_ms" : "hedge_quantile") + " has no effect"
        );
    if (s.max_retries && s.retry_budget == 0 && s.retry_min_per_s == 0)
        out.push_back(
            key_of(i, "max_retries") + ": " + std::to_string(s.max_retries) +
            ", but retry_budget and retry_min_per_s are 0: no retry is ever allowed"
        );
    // The first retry waits 0.5 to 1.5 times the backoff, and none is sent past the deadline.
    if (s.max_retries && s.timeout && s.retry_backoff >= *s.timeout)
        out.push_back(
            key_of(i, "retry_backoff_ms") + ": " + ms(s.retry_backoff) + " is not below timeout_ms (" +
            ms(*s.timeout) + "): most retries of " + name + " would wait past its timeout, and are not sent"
        );
    // Every attempt counts for the breaker: a fetch whose retries all fail is max_retries + 1 failures.
    if (s.breaker_failures && s.max_retries && s.breaker_failures <= s.max_retries + 1)
        out.push_back(
            key_of(i, "breaker_failures") + ": " + std::to_string(s.breaker_failures) +
            " is not above max_retries + 1 (" + std::to_string(s.max_retries + 1) +
            "): each retry counts as a failure, so one failing fetch opens the circuit of " + name
        );
    if (s.tls && s.tls->insecure_skip_verify)
        out.push_back(
            key_of(i, "insecure_skip_verify") + ": the certificate and name of " + s.host_header +
            " are not checked (for tests only)"
        );
    // The other scheme's default port: almost always the wrong scheme.
    if (!s.tls && s.port == 443)
        out.push_back(key_of(i, "url") + ": http:// to port 443, the HTTPS port (is it https://?)");
    if (s.tls && s.port == 80)
        out.push_back(key_of(i, "url") + ": https:// to port 80, the HTTP port (is it http://?)");
}

bool is_address(std::string const& host) {
    boost::system::error_code ec;
    boost::asio::ip::make_address(host, ec);
    return !ec;
}

// The lookups of one call, shared with the threads doing them, which may outlive the call.
struct lookups {
    std::mutex mutex;
    std::condition_variable done;
    std::vector<std::string> hosts;
    std::vector<std::optional<std::string>> errors;  // per host, once answered: empty if resolved
    std::size_t next = 0;                            // the next host a thread takes
    std::size_t left = 0;                            // hosts not answered yet
};

// What getaddrinfo() says of `host`: empty if it has an address.
std::string lookup(std::string const& host) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;  // as Asio's resolver asks by default
    addrinfo* found = nullptr;
    int const rc = getaddrinfo(host.c_str(), nullptr, &hints, &found);
    if (rc == 0) {
        freeaddrinfo(found);
        return {};
    }
    return rc == EAI_SYSTEM ? std::strerror(errno) : gai_strerror(rc);
}

void look_up_hosts(std::shared_ptr<lookups> state) {
    for (;;) {
        std::string host;
        std::size_t index = 0;
        {
            std::lock_guard lock{state->mutex};
            if (state->next == state->hosts.size()) return;
            index = state->next++;
            host = state->hosts[index];
        }
        auto error = lookup(host);
        std::lock_guard lock{state->mutex};
        state->errors[index] = std::move(error);
        if (--state->left == 0) state->done.notify_all();
    }
}

}  // namespace

std::vector<std::string> config_warnings(options const& opts) {
    std::vector<std::string> out;
    if (opts.upstreams.empty())
        out.push_back("upstreams: none given: the embedded demo services answer, with made-up data");
    else if (opts.upstream_pool_size == 0)
        out.push_back(
            "upstream_pool_size: 0 keeps no connection: every fetch connects anew (and handshakes, over TLS)"
        );
    if (opts.access_log && (opts.log_level == "warn" || opts.log_level == "error" || opts.log_level == "off"))
        out.push_back(
            "access_log: its lines are at info, which log_level " + wire::quoted_short(opts.log_level) +
            " leaves out"
        );
    if (opts.trust_forwarded_for && !opts.access_log)
        out.push_back("trust_forwarded_for: only the access log uses X-Forwarded-For, and access_log is off");
    for (std::size_t i = 0; i < opts.upstreams.size(); ++i) service_warnings(opts, i, opts.upstreams[i], out);
    return out;
}

std::vector<std::string> resolution_warnings(options const& opts, std::chrono::milliseconds budget) {
    auto state = std::make_shared<lookups>();
    for (auto const& s : opts.upstreams)
        if (!is_address(s.host) &&
            std::find(state->hosts.begin(), state->hosts.end(), s.host) == state->hosts.end())
            state->hosts.push_back(s.host);
    if (state->hosts.empty()) return {};
    state->errors.resize(state->hosts.size());
    state->left = state->hosts.size();
    // A few threads share the hosts; a lookup that hangs holds only its own thread.
    auto const threads = std::min<std::size_t>(state->hosts.size(), 16);
    for (std::size_t t = 0; t < threads; ++t) std::thread(look_up_hosts, state).detach();

    std::unique_lock lock{state->mutex};
    state->done.wait_for(lock, budget, [&] { return state->left == 0; });
    std::vector<std::string> out;
    for (std::size_t i = 0; i < opts.upstreams.size(); ++i) {
        auto const& host = opts.upstreams[i].host;
        auto const at = std::find(state->hosts.begin(), state->hosts.end(), host);
        if (at == state->hosts.end()) continue;
        auto const& error = state->errors[static_cast<std::size_t>(at - state->hosts.begin())];
        if (!error)
            out.push_back(
                key_of(i, "url") + ": " + wire::quoted_short(host) + " did not resolve within " + ms(budget) +
                " ms"
            );
        else if (!error->empty())
            out.push_back(
                key_of(i, "url") + ": " + wire::quoted_short(host) + " does not resolve (" + *error + ")"
            );
    }
    return out;
}

}  // namespace fanout
