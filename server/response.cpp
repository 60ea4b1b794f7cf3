#include "server/response.hpp"

#include "server/log.hpp"

#include <boost/beast/http/status.hpp>
#include <boost/json/serialize.hpp>

#include <charconv>
#include <ctime>

namespace fanout {

response json_response(unsigned status, std::string body) {
    response res;
    res.status = status;
    res.body = std::move(body);
    return res;
}

response error_response(unsigned status, std::string_view message) {
    return json_response(status, R"({"error":)" + json_quote(message) + "}");
}

namespace {

void append_number(std::string& out, std::size_t n) {
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n);
    out.append(buf, end);
}

}  // namespace

std::string_view http_date::now() {
    auto const t = std::time(nullptr);
    if (t != second_) {
        second_ = t;
        std::tm utc{};
        gmtime_r(&t, &utc);
        size_ = std::strftime(text_, sizeof text_, "%a, %d %b %Y %H:%M:%S GMT", &utc);
    }
    return {text_, size_};
}

void write_head(
    std::string& out, response const& res, unsigned version, bool keep_alive, std::string_view date
) {
    out += version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ";
    append_number(out, res.status);
    out += ' ';
    auto reason = boost::beast::http::obsolete_reason(static_cast<boost::beast::http::status>(res.status));
    out.append(reason.data(), reason.size());
    out += "\r\nDate: ";
    out += date;
    out += "\r\nServer: fanout/" FANOUT_VERSION "\r\nContent-Type: ";
    out += res.content_type;
    out += "\r\nCache-Control: no-store\r\n";
    if (res.allow_get_head) out += "Allow: GET, HEAD\r\n";
    if (res.complete)
        out += *res.complete ? "X-Aggregate-Complete: true\r\n" : "X-Aggregate-Complete: false\r\n";
    if (!res.server_timing.empty()) {
        out += "Server-Timing: ";
        out += res.server_timing;
        out += "\r\n";
    }
    if (!res.streamed) {
        out += "Content-Length: ";
        append_number(out, res.body.size());
        out += "\r\n";
    } else if (version != 10) {
        out += "Transfer-Encoding: chunked\r\n";
    }
    // HTTP/1.1 keeps the connection open by default, HTTP/1.0 closes it: say so only when different.
    if (version == 10 && keep_alive) out += "Connection: keep-alive\r\n";
    if (version != 10 && !keep_alive) out += "Connection: close\r\n";
    out += "\r\n";
}

}  // namespace fanout
