#pragma once

#include "handlers/route_plan.hpp"

#include <fanout/error.hpp>
#include <span>
#include <string>

namespace fanout::handlers {

// The JSON of a failure, as in an answer's "errors": {"kind","message"[,"status"]}.
void append_error(std::string& out, upstream::fetch_error const& e);

// Appends a backend's part: its body with allow/deny applied (as it came when it has neither),
// or its fallback when it failed. False, appending nothing, when it failed without a fallback.
bool append_part(std::string& out, backend_plan const& backend, upstream::fetch_result const& result);

// The merge shape's answer body: the parts of the backends in order, objects merged member by
// member (a later member replaces an earlier one of the same name), any other part under its key;
// then "_errors" with each failure, when there are any.
std::string merged(route_plan const& route, std::span<upstream::fetch_result const> results);

}  // namespace fanout::handlers
