#pragma once

#include <fanout/options.hpp>

namespace fanout {

// What a start checks beyond the command line and the configuration file, without binding or
// starting anything: the listen addresses, the routes, and the upstream client as each event loop
// builds its own (every https:// service's trust store, certificate and key loaded and checked, as
// its connections use them), then dropped. Host names are not resolved. Throws what a start would,
// with the same message.
void check_startable(options const& opts);

}  // namespace fanout
