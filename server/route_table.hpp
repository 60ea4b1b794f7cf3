#pragma once

#include "handlers/route_plan.hpp"

#include <cstddef>
#include <fanout/options.hpp>
#include <fanout/service.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace fanout {

// The routes a server answers, compiled from options::routes (or the seed's four endpoints when it
// is empty), and the matching of a request path against their templates.
class route_table {
  public:
    // Checks every route against opts.upstreams. Throws std::invalid_argument naming the key at
    // fault, e.g. "routes[2].backends[0].service: unknown upstream 'userz'".
    explicit route_table(options const& opts);

    // The route whose template matches `path` (origin-form, percent-encoded, no query), with the
    // values of its `{name}` segments (decoded) appended to `values`; null if none does.
    // A segment that is not valid percent-encoding matches no placeholder.
    fanout::route_plan const* find(std::string_view path, std::vector<fanout::param>& values) const;

    std::vector<fanout::route_plan> const& plans() const noexcept { return plans_; }
    // Every header any route forwards, lower-case: what a request parser must keep.
    std::vector<std::string> const& forwarded_names() const noexcept { return forwarded_; }

  private:
    struct segment {
        std::string text;  // a literal, or a placeholder's name
        bool placeholder = false;
    };
    std::vector<fanout::route_plan> plans_;
    std::vector<std::vector<segment>> segments_;  // of each plan
    std::vector<std::string> forwarded_;
};

}  // namespace fanout
