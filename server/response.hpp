#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace fanout {

// An answer before serialisation. fanout's answers have a fixed set of headers, so they are written
// straight into bytes (write_head) instead of going through a general field container.
struct response {
    unsigned status = 200;
    std::string body;
    std::string_view content_type = "application/json";
    bool allow_get_head = false;   // Allow: GET, HEAD (405)
    std::optional<bool> complete;  // X-Aggregate-Complete (aggregate answers)
    // A body of unknown length follows the head (a streamed route): chunked in HTTP/1.1; in
    // HTTP/1.0, ended by closing the connection.
    bool streamed = false;
    std::string server_timing;  // Server-Timing's value; empty: none
};

response json_response(unsigned status, std::string body);

// A JSON error answer: {"error": message}.
response error_response(unsigned status, std::string_view message);

// Appends the status line and headers, up to and including the blank line, to out. `date`: the
// Date header's value (http_date).
void write_head(
    std::string& out, response const& res, unsigned version, bool keep_alive, std::string_view date
);

// The current time as an HTTP date (RFC 9110 §5.6.7), formatted at most once a second. One per
// event loop: not thread-safe.
class http_date {
  public:
    std::string_view now();

  private:
    long long second_ = -1;
    char text_[40] = {};
    std::size_t size_ = 0;
};

}  // namespace fanout
