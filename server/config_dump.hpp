#pragma once

#include <fanout/options.hpp>
#include <string>

namespace fanout {

// The effective configuration as a JSON object, indented for reading: every setting of the
// configuration file, its defaults filled in, under the file's own keys, so that the text is itself
// a configuration file meaning the same. Settings that are off unless set (a service's timeout_ms,
// hedging, TLS files) are null. Files are named, never read; the logger and on_event are not
// settings and are left out. What `fanout --check` prints.
std::string describe(options const& opts);

}  // namespace fanout
