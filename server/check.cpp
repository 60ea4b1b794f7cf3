#include "server/check.hpp"

#include "server/listener.hpp"

#include <boost/asio/io_context.hpp>

#include <fanout/client.hpp>

namespace fanout {

void check_startable(options const& opts) {
    listen_endpoint(opts.listen_host, opts.listen_port);
    if (!opts.admin_listen_host.empty()) listen_endpoint(opts.admin_listen_host, opts.admin_listen_port);
    boost::asio::io_context never_run;
    fanout::client{
        never_run.get_executor(),
        opts.upstreams,
        {.max_body = opts.max_upstream_body,
         .max_head = opts.max_upstream_head,
         .max_idle_per_service = opts.upstream_pool_size,
         .deadline_header = opts.deadline_header,
         // Never answered: nothing is looked up (the loop never runs), and nothing waits for it.
         .resolve = [](std::string const&, std::uint16_t, fanout::resolve_handler) {},
         .dns_refresh = opts.dns_refresh}};
}

}  // namespace fanout
