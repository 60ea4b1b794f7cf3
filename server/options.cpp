#include "server/listener.hpp"
#include "server/route_config.hpp"
#include "server/route_table.hpp"
#include "server/setting_error.hpp"
#include "server/settings.hpp"
#include "wire/json_text.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/json/basic_parser_impl.hpp>
#include <boost/json/parse.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <fanout/client.hpp>
#include <fanout/options.hpp>
#include <fstream>
#include <functional>
#include <limits>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace fanout {

namespace json = boost::json;

namespace detail {

using detail::bad;

std::int64_t checked(std::string const& where, std::int64_t v, std::int64_t lo, std::int64_t hi) {
    if (v < lo || v > hi) {
        throw bad(
            where,
            std::to_string(v) + " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]"
        );
    }
    return v;
}

// HOST:PORT, into `host_to` and `port_to`.
void set_address(
    std::string& host_to, std::uint16_t& port_to, std::string const& where, std::string const& value
) {
    auto fail = [&] { return bad(where, "expected HOST:PORT, got " + wire::quoted_short(value)); };
    auto colon = value.rfind(':');
    if (colon == std::string::npos || colon == 0) throw fail();
    auto host = value.substr(0, colon);
    bool const bracketed = host.front() == '[';
    if (bracketed) {
        if (host.back() != ']' || host.size() < 3) throw fail();
        host = host.substr(1, host.size() - 2);
    }
    auto port = std::string_view(value).substr(colon + 1);
    unsigned p = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
    if (port.empty() || ec != std::errc{} || end != port.data() + port.size() || p > 65535) throw fail();
    // Checked here rather than when binding, so that it is a bad flag (exit 2), not a failure to serve.
    auto address = parse_listen_host(host);
    if (!address)
        throw bad(
            where,
            wire::quoted_short(host) + " is not an IP address or localhost (host names are not resolved)"
        );
    if (address->is_v6() != bracketed)
        throw bad(
            where, bracketed
                       ? "only an IPv6 address goes in brackets, got " + wire::quoted_short(value)
                       : "an IPv6 address goes in brackets, e.g. [::1]:8080, got " + wire::quoted_short(value)
        );
    host_to = host;
    port_to = static_cast<std::uint16_t>(p);
}

void set_listen(options& opts, std::string const& where, std::string const& value) {
    set_address(opts.listen_host, opts.listen_port, where, value);
}

// Empty: none (a flag turning off the file's).
void set_admin_listen(options& opts, std::string const& where, std::string const& value) {
    if (value.empty())
        opts.admin_listen_host.clear();
    else
        set_address(opts.admin_listen_host, opts.admin_listen_port, where, value);
}

void set_access_log_sample(options& opts, std::string const& where, double value) {
    if (!(value > 0 && value <= 1)) throw bad(where, "must be above 0 and at most 1");
    opts.access_log_sample = value;
}

std::array<switch_setting, 3> const switches{{
    {"server-timing", "server_timing",
     "every aggregate answer carries Server-Timing (each backend's duration and outcome); off by default: "
     "it reveals internals",
     &options::server_timing},
    {"access-log", "access_log",
     "one JSON line at info per answered request (client, method, path without the query, route, status, "
     "bytes, duration, trace id); off by default",
     &options::access_log},
    {"trust-forwarded-for", "trust_forwarded_for",
     "the access log shows the first X-Forwarded-For address too (when it is an IP address); only behind "
     "a proxy that sets the header, since a client can send any",
     &options::trust_forwarded_for},
}};

void set_log_level(options& opts, std::string const& where, std::string const& value) {
    static std::set<std::string> const levels{"trace", "debug", "info", "warn", "error", "off"};
    // The logs write "level":"warning": the name they show is taken too.
    auto const level = value == "warning" ? std::string("warn") : value;
    if (!levels.count(level))
        throw bad(
            where, "expected trace|debug|info|warn (or warning)|error|off, got " + wire::quoted_short(value)
        );
    opts.log_level = level;
}

constexpr std::int64_t max_ms = 24 * 3600 * 1000;

// A header field name (an RFC 9110 token), not one that fanout writes itself or that frames a message.
void set_deadline_header(options& opts, std::string const& where, std::string const& value) {
    if (!value.empty() && !fanout::valid_field_name(value))
        throw bad(
            where, "expected a header name (letters, digits, !#$%&'*+-.^_`|~; at most 64), got " +
                       wire::quoted_short(value)
        );
    static constexpr std::array<std::string_view, 14> reserved{
        "host",        "user-agent", "accept",  "connection", "content-length", "transfer-encoding",
        "te",          "trailer",    "upgrade", "expect",     "keep-alive",     "proxy-connection",
        "traceparent", "tracestate"};
    if (std::any_of(reserved.begin(), reserved.end(), [&](auto r) {
            return boost::beast::iequals(value, r);
        }))
        throw bad(where, wire::quoted_short(value) + " is a header fanout sets itself");
    opts.deadline_header = value;
}

std::vector<setting> const& settings() {
    auto ms = [](milliseconds options::*member, std::int64_t lo) {
        return [member, lo](options& o, std::string const& where, std::int64_t v) {
            o.*member = milliseconds(checked(where, v, lo, max_ms));
        };
    };
    auto size = [](std::size_t options::*member, std::int64_t lo, std::int64_t hi) {
        return [member, lo, hi](options& o, std::string const& where, std::int64_t v) {
            o.*member = static_cast<std::size_t>(checked(where, v, lo, hi));
        };
    };
    static std::vector<setting> const all{
        {"listen",
         "listen",
         "HOST:PORT to serve on, default 127.0.0.1:8080. HOST is an IP address (IPv6 in brackets: "
         "[::1]:8080) "
         "or localhost; host names are not resolved. Port 0: pick a free port",
         true,
         {},
         set_listen},
        {"admin-listen",
         "admin_listen",
         "HOST:PORT of the admin listener: /healthz, /metrics and /config (the effective configuration) on "
         "at most 16 connections of its own, never counted in --max-connections. HOST as for --listen. "
         "Default: none",
         true,
         {},
         set_admin_listen},
        {"threads",
         "threads",
         "event loops (threads), default: number of cores",
         false,
         [](options& o, std::string const& where, std::int64_t v) {
             o.threads = static_cast<unsigned>(checked(where, v, 1, 256));
         },
         {}},
        {"timeout-ms",
         "timeout_ms",
         "deadline of the context-timeout and errgroup endpoints (default 1000)",
         false,
         ms(&options::timeout, 1),
         {}},
        {"max-timeout-ms",
         "max_timeout_ms",
         "cap for ?timeout_ms= (default 10000)",
         false,
         ms(&options::max_timeout, 1),
         {}},
        {"max-fetch-ms",
         "max_fetch_ms",
         "every upstream fetch of every endpoint ends as a timeout after it, a last safety net (default "
         "60000)",
         false,
         ms(&options::max_fetch, 1),
         {}},
        {"max-upstream-body",
         "max_upstream_body",
         "largest upstream body accepted, bytes (default 1048576)",
         false,
         size(&options::max_upstream_body, 1, std::int64_t(1) << 30),
         {}},
        {"max-upstream-head",
         "max_upstream_head",
         "largest upstream response head, chunk-size line or trailer section, bytes (default 16384)",
         false,
         size(&options::max_upstream_head, 256, 1 << 20),
         {}},
        {"upstream-pool-size",
         "upstream_pool_size",
         "idle connections kept per service and thread (default 256)",
         false,
         size(&options::upstream_pool_size, 0, 100'000),
         {}},
        {"dns-refresh-ms",
         "dns_refresh_ms",
         "upstream host names are resolved again, in the background, once their addresses are this old "
         "(default 30000; 0: at start only)",
         false,
         ms(&options::dns_refresh, 0),
         {}},
        {"max-request-head",
         "max_request_head",
         "largest request head (request line included), bytes; over it: 431; also bounds a chunk-size line "
         "and the trailers (default 8192)",
         false,
         size(&options::max_request_head, 256, 1 << 20),
         {}},
        {"max-request-body",
         "max_request_body",
         "largest request body, bytes; over it: 413 (default 65536)",
         false,
         size(&options::max_request_body, 0, std::int64_t(1) << 30),
         {}},
        {"header-timeout-ms",
         "header_timeout_ms",
         "a started request must arrive within it (default 10000)",
         false,
         ms(&options::header_timeout, 1),
         {}},
        {"idle-timeout-ms",
         "idle_timeout_ms",
         "close keep-alive connections idle for longer (default 60000)",
         false,
         ms(&options::idle_timeout, 1),
         {}},
        {"max-connections",
         "max_connections",
         "open client connections; beyond: 503 and close (default 10000)",
         false,
         size(&options::max_connections, 1, 10'000'000),
         {}},
        {"max-background-fetches",
         "max_background_fetches",
         "wg and channel requests whose client left while their fetches go on; beyond: the oldest is "
         "cancelled (default 10000)",
         false,
         size(&options::max_background_fetches, 1, 10'000'000),
         {}},
        {"shutdown-grace-ms",
         "shutdown_grace_ms",
         "on SIGINT/SIGTERM, time in-flight requests get to finish (default 5000)",
         false,
         ms(&options::shutdown_grace, 0),
         {}},
        {"drain-delay-ms",
         "drain_delay_ms",
         "on SIGINT/SIGTERM, keep accepting and serving this long first, /healthz answering 503 and every "
         "answer closing its connection, so that a balancer stops sending (default 0)",
         false,
         ms(&options::drain_delay, 0),
         {}},
        {"deadline-header",
         "deadline_header",
         "header carrying the time left, in milliseconds, to each upstream of the deadline-bound endpoints; "
         "an incoming one shortens the request's deadline. Empty: neither (default X-Request-Timeout-Ms)",
         true,
         {},
         set_deadline_header},
        {"log-level",
         "log_level",
         "trace|debug|info|warn (or warning)|error|off (default info)",
         true,
         {},
         set_log_level},
        {"log-rate-limit",
         "log_rate_limit",
         "lines per second of each kind of failure event, per thread; the rest are counted (0: no limit, "
         "default 5)",
         false,
         [](options& o, std::string const& where, std::int64_t v) {
             o.log_rate_limit = static_cast<std::uint32_t>(checked(where, v, 0, 1'000'000));
         },
         {}},
    };
    return all;
}

void add_upstream(options& o, std::set<std::string>& names, fanout::service s, std::string const& where) {
    if (!names.insert(s.name).second)
        throw bad(where, "service " + wire::quoted_short(s.name) + " given twice");
    o.upstreams.push_back(std::move(s));
}

std::int64_t integer(std::string const& key, json::value const& v, std::int64_t lo, std::int64_t hi) {
    if (!v.is_int64()) throw bad(key, "expected an integer");
    return checked(key, v.as_int64(), lo, hi);
}

// A number from 0 to 1 (an integer is a number too); `strict`: neither 0 nor 1.
double fraction(std::string const& key, json::value const& v, bool strict = false) {
    if (!v.is_number()) throw bad(key, "expected a number");
    auto const x = v.to_number<double>();
    if (strict ? !(x > 0 && x < 1) : !(x >= 0 && x <= 1))
        throw bad(key, strict ? "must be above 0 and below 1" : "must be from 0 to 1");
    return x;
}

// The keys of one upstream entry besides its name and URL.
// What server_name may be: a DNS name (RFC 1123 letters, digits, '-' and '.') or an IP literal
// without a zone.
bool host_name_or_address(std::string_view text) {
    if (text.empty() || text.size() > 253) return false;
    boost::system::error_code ec;
    boost::asio::ip::make_address(text, ec);
    if (!ec) return text.find('%') == std::string_view::npos;
    return std::all_of(text.begin(), text.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
               c == '.';
    });
}

// A file named in the config must be readable now: a typo fails at start, naming its key.
std::string readable_file(std::string const& key, json::value const& value) {
    if (!value.is_string() || value.as_string().empty()) throw bad(key, "expected a file name");
    std::string path(value.as_string());
    if (!std::ifstream(path)) throw bad(key, "cannot read " + wire::quoted_short(path));
    return path;
}

void apply_tls_key(fanout::service& s, std::string const& key, std::string_view k, json::value const& value) {
    if (!s.tls) throw bad(key, "only for https:// upstreams");
    auto& tls = *s.tls;
    if (k == "ca_file") {
        tls.ca_file = readable_file(key, value);
    } else if (k == "client_cert") {
        tls.client_cert = readable_file(key, value);
    } else if (k == "client_key") {
        tls.client_key = readable_file(key, value);
    } else if (k == "server_name") {
        if (!value.is_string() || !host_name_or_address(value.as_string()))
            throw bad(key, "expected a host name or an IP address");
        tls.server_name = value.as_string();
    } else if (k == "tls_handshake_timeout_ms") {
        tls.handshake_timeout = milliseconds(integer(key, value, 1, max_ms));
    } else if (!value.is_bool()) {
        throw bad(key, "expected true or false");
    } else {
        tls.insecure_skip_verify = value.as_bool();
    }
}

// Keys of an upstream that are off unless given: null leaves them so (--check prints them so).
bool off_unless_given(std::string_view k) {
    static constexpr std::array<std::string_view, 7> keys{"timeout_ms", "hedge_after_ms", "hedge_quantile",
                                                          "ca_file",    "client_cert",    "client_key",
                                                          "server_name"};
    return std::find(keys.begin(), keys.end(), k) != keys.end();
}

void apply_upstream_key(
    fanout::service& s, std::string const& key, std::string_view k, json::value const& value
) {
    if (value.is_null() && off_unless_given(k)) {
        if (!s.tls && (k == "ca_file" || k == "client_cert" || k == "client_key" || k == "server_name"))
            throw bad(key, "only for https:// upstreams");
        return;
    }
    if (k == "timeout_ms") {
        s.timeout = milliseconds(integer(key, value, 1, max_ms));
    } else if (k == "breaker_failures") {
        s.breaker_failures = static_cast<unsigned>(integer(key, value, 0, 1'000'000));
    } else if (k == "breaker_cooldown_ms") {
        s.breaker_cooldown = milliseconds(integer(key, value, 1, max_ms));
    } else if (k == "hedge_after_ms") {
        s.hedge_after = milliseconds(integer(key, value, 1, max_ms));
    } else if (k == "hedge_quantile") {
        s.hedge_quantile = fraction(key, value, true);
    } else if (k == "hedge_budget") {
        s.hedge_budget = fraction(key, value);
    } else if (k == "max_retries") {
        s.max_retries = static_cast<unsigned>(integer(key, value, 0, 10));
    } else if (k == "retry_backoff_ms") {
        s.retry_backoff = milliseconds(integer(key, value, 1, max_ms));
    } else if (k == "retry_budget") {
        s.retry_budget = fraction(key, value);
    } else if (k == "retry_min_per_s") {
        s.retry_min_per_s = static_cast<unsigned>(integer(key, value, 0, 1'000'000));
    } else if (k == "ca_file" || k == "client_cert" || k == "client_key" || k == "server_name" || k == "insecure_skip_verify" || k == "tls_handshake_timeout_ms") {
        apply_tls_key(s, key, k, value);
    } else {
        throw bad(key, "unknown key");
    }
}

void apply_upstreams(options& o, json::value const& v) {
    if (!v.is_array()) throw bad("upstreams", "expected an array");
    o.upstreams.clear();
    std::set<std::string> names;
    std::size_t i = 0;
    for (auto const& entry : v.as_array()) {
        auto where = "upstreams[" + std::to_string(i++) + "]";
        if (!entry.is_object()) throw bad(where, "expected an object");
        auto const& fields = entry.as_object();
        auto text = [&](char const* k) {
            auto const* value = fields.if_contains(k);
            if (!value || (value->is_string() && value->as_string().empty()))
                throw bad(where + "." + k, "missing");
            if (!value->is_string()) throw bad(where + "." + k, "expected a string");
            return std::string(value->as_string());
        };
        auto const spec = text("name") + "=" + text("url");
        fanout::service s;
        try {
            s = fanout::parse_service(spec);
        } catch (std::invalid_argument const& e) {
            throw bad(where, e.what());
        }
        for (auto const& [k, value] : fields)
            if (k != "name" && k != "url") apply_upstream_key(s, where + "." + wire::shortened(k), k, value);
        if (s.tls && s.tls->client_cert.empty() != s.tls->client_key.empty())
            throw bad(where, "client_cert and client_key go together");
        if (s.tls && s.tls->insecure_skip_verify && !s.tls->ca_file.empty())
            throw bad(where, "ca_file has no use with insecure_skip_verify");
        add_upstream(o, names, std::move(s), where);
    }
}

// Follows a document through Boost.JSON's parser events to find a key given twice in one object,
// which json::parse keeps quietly (the last one). found: e.g. "upstreams[1]: duplicate key 'url'".
class duplicate_key_finder {
  public:
    static constexpr std::size_t max_array_size = -1;
    static constexpr std::size_t max_object_size = -1;
    static constexpr std::size_t max_string_size = -1;
    static constexpr std::size_t max_key_size = -1;

    std::string found;

    bool on_document_begin(json::error_code&) { return true; }
    bool on_document_end(json::error_code&) { return true; }
    bool on_array_begin(json::error_code&) { return begin(false); }
    bool on_array_end(std::size_t, json::error_code&) { return end(); }
    bool on_object_begin(json::error_code&) { return begin(true); }
    bool on_object_end(std::size_t, json::error_code&) { return end(); }
    bool on_string_part(json::string_view, std::size_t, json::error_code&) { return true; }
    bool on_string(json::string_view, std::size_t, json::error_code&) { return value(); }
    bool on_key_part(json::string_view s, std::size_t, json::error_code&) {
        key_.append(s.data(), s.size());
        return true;
    }
    bool on_key(json::string_view s, std::size_t, json::error_code& ec) {
        key_.append(s.data(), s.size());
        auto& object = levels_.back();
        if (!object.keys.insert(key_).second) {
            found = path() + "duplicate key " + wire::quoted_short(key_);
            ec = json::error::syntax;
            return false;
        }
        object.key = std::move(key_);
        key_.clear();
        return true;
    }
    bool on_number_part(json::string_view, json::error_code&) { return true; }
    bool on_int64(std::int64_t, json::string_view, json::error_code&) { return value(); }
    bool on_uint64(std::uint64_t, json::string_view, json::error_code&) { return value(); }
    bool on_double(double, json::string_view, json::error_code&) { return value(); }
    bool on_bool(bool, json::error_code&) { return value(); }
    bool on_null(json::error_code&) { return value(); }
    bool on_comment_part(json::string_view, json::error_code&) { return true; }
    bool on_comment(json::string_view, json::error_code&) { return true; }

  private:
    struct level {
        bool is_object;
        std::set<std::string> keys{};  // of an object
        std::string key{};             // of an object: the one whose value is being read
        std::size_t values = 0;        // of an array: elements begun
    };

    // A value begins: in an array, the next element.
    bool value() {
        if (!levels_.empty() && !levels_.back().is_object) ++levels_.back().values;
        return true;
    }
    bool begin(bool is_object) {
        value();
        levels_.push_back({is_object});
        return true;
    }
    bool end() {
        levels_.pop_back();
        return true;
    }
    // Where the innermost object is, as "upstreams[1]: ", or "" at the top.
    std::string path() const {
        std::string out;
        for (std::size_t i = 0; i + 1 < levels_.size(); ++i) {
            auto const& l = levels_[i];
            if (!l.is_object)
                out += "[" + std::to_string(l.values - 1) + "]";
            else
                out += (out.empty() ? "" : ".") + wire::shortened(l.key);
        }
        return out.empty() ? out : out + ": ";
    }

    std::vector<level> levels_;
    std::string key_;  // the key being read, from its parts
};

// "line L, column C" (from 1) of the byte at `offset`, where the parser stopped.
std::string line_and_column(std::string_view text, std::size_t offset) {
    auto const before = text.substr(0, std::min(offset, text.size()));
    auto const line = 1 + std::count(before.begin(), before.end(), '\n');
    auto const last_newline = before.rfind('\n');
    auto const column = before.size() - (last_newline == std::string_view::npos ? 0 : last_newline + 1) + 1;
    return "line " + std::to_string(line) + ", column " + std::to_string(column);
}

// apply_config, telling which keys the file set.
std::set<std::string> apply_config_keys(options& opts, std::string_view json_text) {
    std::set<std::string> keys;
    json::error_code ec;
    json::basic_parser<duplicate_key_finder> finder{json::parse_options{}};
    auto const read = finder.write_some(false, json_text.data(), json_text.size(), ec);
    if (!finder.handler().found.empty()) throw std::invalid_argument(finder.handler().found);
    if (ec)
        throw std::invalid_argument(
            "not valid JSON at " + line_and_column(json_text, read) + ": " + ec.message()
        );
    auto doc = json::parse(json_text, ec);
    if (ec) throw std::invalid_argument("not valid JSON: " + ec.message());
    if (!doc.is_object()) throw std::invalid_argument("expected a JSON object at the top");
    for (auto const& [k, value] : doc.as_object()) {
        std::string key(k);
        keys.insert(key);
        if (key == "upstreams") {
            apply_upstreams(opts, value);
            continue;
        }
        if (key == "routes") {
            apply_routes(opts, value);
            continue;
        }
        if (auto sw =
                std::find_if(switches.begin(), switches.end(), [&](auto const& s) { return key == s.key; });
            sw != switches.end()) {
            if (!value.is_bool()) throw bad(key, "expected true or false");
            opts.*sw->member = value.as_bool();
            continue;
        }
        if (key == "access_log_sample") {
            if (!value.is_number()) throw bad(key, "expected a number");
            set_access_log_sample(opts, key, value.to_number<double>());
            continue;
        }
        if (key == "admin_listen" && value.is_null()) {  // as --check prints it when off
            opts.admin_listen_host.clear();
            continue;
        }
        setting const* s = nullptr;
        for (auto const& candidate : settings())
            if (key == candidate.key) s = &candidate;
        if (!s) throw bad(wire::shortened(key), "unknown key");
        if (s->is_text) {
            if (!value.is_string()) throw bad(key, "expected a string");
            s->set_text(opts, key, std::string(value.as_string()));
        } else {
            if (!value.is_int64()) throw bad(key, "expected an integer");
            s->set_number(opts, key, value.as_int64());
        }
    }
    // Consistency between settings (timeout vs cap) is checked by parse_command_line once flags applied.
    return keys;
}

constexpr std::size_t max_config_size = 1 << 20;

// The file's text, read no further than max_config_size: the path may name an endless stream.
std::string read_config(std::string const& path) {
    std::ifstream in{path, std::ios::binary};
    if (!in) throw std::invalid_argument("--config: cannot read " + wire::quoted_short(path));
    std::string text(max_config_size + 1, '\0');
    in.read(text.data(), static_cast<std::streamsize>(text.size()));
    if (in.bad()) throw std::invalid_argument("--config: cannot read " + wire::quoted_short(path));
    text.resize(static_cast<std::size_t>(in.gcount()));
    if (text.size() > max_config_size)
        throw std::invalid_argument(
            "--config " + wire::shortened(path) + ": larger than " + std::to_string(max_config_size) +
            " bytes"
        );
    return text;
}

}  // namespace detail

void apply_config(options& opts, std::string_view json_text) {
    detail::apply_config_keys(opts, json_text);
}

}  // namespace fanout
