#include "server/stream.hpp"

#include "handlers/shape.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace fanout {

namespace net = boost::asio;

ndjson_parts::ndjson_parts(
    net::any_io_executor ex, fanout::route_plan const& route, std::chrono::steady_clock::time_point start
)
    : route_(route),
      start_(start),
      sent_(route.backends.size()),
      lines_(std::move(ex), route.backends.size() + 1) {
}

void ndjson_parts::part(std::size_t backend, fanout::fetch_result const& result) {
    if (finished_ || backend >= sent_.size() || sent_[backend]) return;
    sent_[backend] = true;
    lines_.try_send(boost::system::error_code{}, fanout::part_line(route_.backends[backend], result));
}

void ndjson_parts::done(std::span<fanout::fetch_result const> results, unsigned status) {
    if (finished_) return;
    bool complete = results.size() == sent_.size();
    std::string rest;  // the parts not sent yet, in backend order, with the summary: one send
    for (std::size_t i = 0; i < results.size() && i < sent_.size(); ++i) {
        complete = complete && results[i].ok();
        if (!sent_[i]) rest += fanout::part_line(route_.backends[i], results[i]);
        sent_[i] = true;
    }
    rest += fanout::summary_line(complete, status, std::chrono::steady_clock::now() - start_);
    finished_ = true;
    lines_.try_send(boost::system::error_code{}, std::move(rest));
}

net::awaitable<std::string> ndjson_parts::next() {
    if (taken_) co_return std::string();
    auto text = co_await lines_.async_receive(net::use_awaitable);
    // Whatever else is waiting goes in the same write.
    while (lines_.try_receive([&](boost::system::error_code, std::string more) { text += more; })) {
    }
    if (finished_ && !lines_.ready()) taken_ = true;
    co_return text;
}

}  // namespace fanout
