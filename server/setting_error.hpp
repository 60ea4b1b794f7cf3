#pragma once

#include <stdexcept>
#include <string>

namespace fanout::detail {

// A setting that cannot be taken: `where` names it (a flag, a key's path), `what` says why.
inline std::invalid_argument bad(std::string const& where, std::string const& what) {
    return std::invalid_argument(where + ": " + what);
}

}  // namespace fanout::detail
