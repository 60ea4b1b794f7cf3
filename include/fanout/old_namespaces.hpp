#pragma once

// Release 0.1 spread the API over fanout::upstream, fanout::server and fanout::handlers; since 0.2
// everything is in fanout (and fanout::detail). These aliases keep code written for 0.1 compiling
// during 0.2; they are deprecated and go in 0.3.
namespace fanout {
namespace upstream = ::fanout;
namespace server = ::fanout;
namespace handlers = ::fanout;
}  // namespace fanout
