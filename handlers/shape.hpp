#pragma once

#include "handlers/route_plan.hpp"

#include <chrono>
#include <fanout/error.hpp>
#include <span>
#include <string>

namespace fanout {

// The JSON of a failure, as in an answer's "errors": {"kind","message"[,"status"]}.
void append_error(std::string& out, fanout::fetch_error const& e);

// Appends a backend's part: its body with allow/deny applied (as it came when it has neither),
// or its fallback when it failed. False, appending nothing, when it failed without a fallback.
bool append_part(std::string& out, backend_plan const& backend, fanout::fetch_result const& result);

// The merge shape's answer body: the parts of the backends in order, objects merged member by
// member (a later member replaces an earlier one of the same name), any other part under its key;
// then "_errors" with each failure, when there are any.
std::string merged(route_plan const& route, std::span<fanout::fetch_result const> results);

// One line of a streamed answer (application/x-ndjson), newline included: {"key":K,"result":PART},
// or {"key":K,"error":{...}}, or both when a fallback stands in for a failure.
std::string part_line(backend_plan const& backend, fanout::fetch_result const& result);

// The last line: {"complete":B,"status":S,"elapsed_ms":X}; `status` is what the answer would have had.
std::string summary_line(bool complete, unsigned status, std::chrono::steady_clock::duration elapsed);

}  // namespace fanout
