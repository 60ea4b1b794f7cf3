#pragma once

#include <boost/json/value.hpp>

#include <fanout/options.hpp>

namespace fanout {

// Reads the config file's "routes" (a list of route objects) into opts.routes, replacing them.
// Checks the types and names of the keys, throwing std::invalid_argument naming the key (e.g.
// "routes[1].backends[0].allow: expected an array of strings"); what depends on other settings
// (upstream names, the deadline cap) is checked by route_table.
void apply_routes(options& opts, boost::json::value const& routes);

}  // namespace fanout
