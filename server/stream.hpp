#pragma once

#include "handlers/request.hpp"
#include "handlers/route_plan.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/experimental/channel.hpp>

#include <chrono>
#include <string>
#include <vector>

namespace fanout {

// A streamed route's answer as lines of application/x-ndjson: each backend's part the moment it
// completes, then a summary. The handler puts them in (part_sink, on the handler's executor);
// the connection takes them out with next(), as they come.
class ndjson_parts final : public fanout::part_sink {
  public:
    ndjson_parts(
        boost::asio::any_io_executor ex,
        fanout::route_plan const& route,
        std::chrono::steady_clock::time_point start
    );

    void part(std::size_t backend, fanout::fetch_result const& result) override;
    void done(std::span<fanout::fetch_result const> results, unsigned status) override;

    // The lines ready (at least one, several when several are), waiting for them; empty once the
    // summary has been taken. Throws when cancelled.
    boost::asio::awaitable<std::string> next();
    bool ended() const noexcept { return taken_; }  // the summary was taken

  private:
    fanout::route_plan const& route_;
    std::chrono::steady_clock::time_point start_;
    std::vector<bool> sent_;  // by backend
    bool finished_ = false;   // the summary was put in
    bool taken_ = false;      // ... and taken out
    // One line per backend and the summary: never more than that many are waiting, so a send
    // never has to wait.
    boost::asio::experimental::channel<void(boost::system::error_code, std::string)> lines_;
};

}  // namespace fanout
