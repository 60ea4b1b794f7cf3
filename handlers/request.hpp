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

namespace fanout {

using clock = std::chrono::steady_clock;

struct route_plan;  // fanout's own routes (internal)

// Counters the handlers keep; shared so that detached producers may outlive a request safely.
struct handler_stats {
    std::size_t channel_producers_live = 0;  // channel producers that have not delivered yet
};

// One upstream fetch of an aggregate request, reported once the request has every result.
struct fetch_event {
    std::string_view endpoint;  // the pattern: "wg", "channel", "context-timeout", "errgroup"
    std::size_t service;        // its index in the client's services
    std::string_view service_name;
    fanout::fetch_result const& result;
    std::string_view trace_id = {};  // of the aggregate request (W3C Trace Context)
};

// Observes the aggregate handlers (fanout's server records its metrics and logs this way; an
// application may put its own). Called on the handler's executor.
class fetch_observer {
  public:
    virtual void fetched(fetch_event const& event) = 0;

  protected:
    ~fetch_observer() = default;
};

// What the aggregate handlers of one event loop share.
struct handler_context {
    fanout::client& client;
    fetch_observer* observer = nullptr;  // null: nothing observes
    std::shared_ptr<handler_stats> stats = std::make_shared<handler_stats>();
};

// Takes a request's parts as they complete (a streamed route) besides its final results.
class part_sink {
  public:
    // A backend's result as soon as its fetch ends, unless its group cancelled it (those, and any
    // not reported here, come with done()).
    virtual void part(std::size_t backend, fanout::fetch_result const& result) = 0;
    // Every backend's final result, and the status the answer would have had; called once, last.
    virtual void done(std::span<fanout::fetch_result const> results, unsigned status) = 0;

  protected:
    ~part_sink() = default;
};

struct aggregate_request {
    std::chrono::milliseconds timeout;  // deadline of the deadline-bound patterns
    clock::time_point start = clock::now();
    // Every fetch of every pattern ends as a timeout after it (options::max_fetch).
    std::chrono::milliseconds max_fetch{60000};
    std::vector<fanout::param> params = {};  // values of the services' placeholders
    fanout::trace_context trace = {};        // forwarded on every fetch; empty: none
    // The route: its backends, shape and pattern. Null: every service, the seed's envelope.
    route_plan const* route = nullptr;
    std::span<std::string const> targets = {};  // per backend: its own expanded target, or empty
    std::string_view forwarded = {};            // header lines sent to every backend
    // Set: the parts go there as they complete, and the reply has no body. Must outlive the handler.
    part_sink* parts = nullptr;
    // Where whoever cancels the request says why first (fanout's server: the client left, the
    // shutdown), so that its cancelled upstream requests are counted for that reason; errgroup
    // adds its siblings' failures. Null: errgroup uses one of its own. Must outlive the handler.
    fanout::cancel_cause* cause = nullptr;
};

// An answer ready to be sent: status and JSON body.
struct reply {
    unsigned status = 200;
    std::string body;
    bool complete = true;       // no upstream failed (X-Aggregate-Complete)
    std::string server_timing;  // the Server-Timing header's value; empty: none
};

// 200 when at least one service answered; otherwise 504 when all failed by timeout, else 502.
unsigned partial_status(std::span<fanout::fetch_result const> results) noexcept;

// The JSON contract of every /api/aggregate/* answer.
reply render(
    std::string_view pattern,
    std::span<fanout::service const> services,
    std::span<fanout::fetch_result const> results,
    unsigned status,
    clock::time_point start
);

// The same for a route's backends (`route` null: the services, as above), shaped as it says.
reply render(
    std::string_view pattern,
    route_plan const* route,
    std::span<fanout::service const> services,
    std::span<fanout::fetch_result const> results,
    unsigned status,
    clock::time_point start
);

// Records every fetch in the metrics, logs each failure (one JSON line each: timeouts included),
// and renders the answer.
reply finish(
    handler_context& ctx,
    std::string_view pattern,
    std::span<fanout::fetch_result const> results,
    unsigned status,
    aggregate_request const& req
);

}  // namespace fanout
