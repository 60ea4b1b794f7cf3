#include "server/check.hpp"

#include "server/listener.hpp"
#include "server/loop_engine.hpp"

namespace fanout {

void check_startable(options const& opts) {
    listen_endpoint(opts.listen_host, opts.listen_port);
    if (!opts.admin_listen_host.empty()) listen_endpoint(opts.admin_listen_host, opts.admin_listen_port);
    check_servable(opts);
}

}  // namespace fanout
