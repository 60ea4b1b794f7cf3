#pragma once

#include <chrono>
#include <fanout/options.hpp>
#include <string>
#include <vector>

namespace fanout {

// Settings that are valid one by one but defeat their own purpose together (a circuit breaker
// that one failing fetch opens, a service timeout no request deadline lets it reach, a hedge
// sent after its fetch timed out, ...). Each message names the key at fault as the configuration
// file does, e.g. "upstreams[1].timeout_ms: 20000 is above max_timeout_ms (10000): ...". Looks at
// nothing but `opts`: no file, no network.
std::vector<std::string> config_warnings(options const& opts);

// One message for each upstream host name that does not resolve to an address, naming its URL's
// key, all resolved at once and waited for `budget` in all (a host still unanswered then is
// reported as such). IP literals are not looked up. Blocks the calling thread; a lookup left
// unanswered goes on in a thread of its own, which the caller may leave running or exit under.
std::vector<std::string> resolution_warnings(options const& opts, std::chrono::milliseconds budget);

}  // namespace fanout
