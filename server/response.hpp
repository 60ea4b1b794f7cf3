#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace fanout::server {

// An answer before serialisation. fanout's answers have a fixed set of headers, so they are written
// straight into bytes (write_head) instead of going through a general field container.
struct response {
    unsigned status = 200;
    std::string body;
    std::string_view content_type = "application/json";
    bool allow_get = false;        // Allow: GET (405)
    std::optional<bool> complete;  // X-Aggregate-Complete (aggregate answers)
};

response json_response(unsigned status, std::string body);

// A JSON error answer: {"error": message}.
response error_response(unsigned status, std::string_view message);

// Appends the status line and headers, up to and including the blank line, to out.
void write_head(std::string& out, response const& res, unsigned version, bool keep_alive);

}  // namespace fanout::server
