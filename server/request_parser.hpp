#pragma once

#include "server/request_fields.hpp"
#include "wire/guarded_parser.hpp"

#include <boost/beast/core/string.hpp>

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace fanout {

// Reads what fanout needs of a request (method, target, version, keep-alive) and skips header fields
// and body, which a general message would store (and allocate for). Limits as on any Beast parser:
// header_limit() and body_limit(). Read it with wire::read_message().
class request_parser : public wire::guarded_parser<true> {
  public:
    using verb = boost::beast::http::verb;

    // Why the head was refused, beyond what Beast checks itself (RFC 9112).
    enum class refusal {
        none,
        bad_host,          // HTTP/1.1 without exactly one valid Host, or an invalid Host: 400
        unknown_encoding,  // a Transfer-Encoding whose final coding is not chunked: 501
    };

    verb method() const noexcept { return method_; }
    std::string const& method_string() const noexcept { return method_string_; }
    std::string const& target() const noexcept { return target_; }
    unsigned version() const noexcept { return version_; }
    refusal refused() const noexcept { return refused_; }
    request_fields const& fields() const noexcept { return fields_; }
    // The header whose value fields().deadline keeps; empty: none. Must outlive the parser.
    void deadline_header(std::string_view name) noexcept { deadline_header_ = name; }
    // The fields some route forwards (lower-case names), kept in fields(). Must outlive the parser.
    void forwarded(std::span<std::string const> names) noexcept { forwarded_ = names; }
    // Keep the first address of the first X-Forwarded-For line, when it is an IP address.
    void keep_forwarded_for(bool keep) noexcept { keep_forwarded_for_ = keep; }
    // That address as sent (at most 45 bytes); empty when none was sent or it is not one.
    std::string_view forwarded_for() const noexcept { return {forwarded_for_.data(), forwarded_for_size_}; }
    // The client waits for `100 Continue` before it sends the body (RFC 9110 §10.1.1; HTTP/1.1 only).
    bool expects_continue() const noexcept { return expect_continue_ && version_ >= 11; }

  private:
    void on_request_impl(verb method, string_view method_str, string_view target, int version, error_code&)
        override {
        method_ = method;
        method_string_.assign(method_str.data(), method_str.size());
        target_.assign(target.data(), target.size());
        version_ = static_cast<unsigned>(version);
    }
    void on_response_impl(int, string_view, int, error_code&) override {}
    void on_field_impl(boost::beast::http::field f, string_view name, string_view value, error_code&)
        override {
        // Not from the trailer section (RFC 9110 §6.5.1): a proxy in front may have vetted the head only.
        if (!is_header_done() &&
            (f == boost::beast::http::field::unknown || f == boost::beast::http::field::accept ||
             !deadline_header_.empty() || !forwarded_.empty()))
            take_field(
                fields_, deadline_header_, {name.data(), name.size()}, {value.data(), value.size()},
                forwarded_
            );
        if (keep_forwarded_for_ && !forwarded_for_seen_ && !is_header_done() &&
            f == boost::beast::http::field::unknown && boost::beast::iequals(name, "x-forwarded-for")) {
            forwarded_for_seen_ = true;
            forwarded_for_size_ =
                static_cast<std::uint8_t>(first_address({value.data(), value.size()}, forwarded_for_));
        }
        if (f == boost::beast::http::field::host) {
            ++hosts_;
            host_valid_ = host_valid_ && valid_host(value);
        } else if (f == boost::beast::http::field::transfer_encoding) {
            transfer_encoding_ = true;
        } else if (f == boost::beast::http::field::expect) {
            expect_continue_ = expect_continue_ || boost::beast::iequals(value, "100-continue");
        }
    }
    // Stops the parse (any error does) before a body is framed the wrong way.
    void on_header_impl(error_code& ec) override {
        if (transfer_encoding_ && !chunked())
            refused_ = refusal::unknown_encoding;
        else if (!host_valid_ || (version_ >= 11 && hosts_ != 1))
            refused_ = refusal::bad_host;
        if (refused_ != refusal::none) ec = boost::beast::http::error::bad_field;
    }
    void on_body_init_impl(boost::optional<std::uint64_t> const&, error_code&) override {}
    std::size_t on_body_impl(string_view body, error_code&) override { return body.size(); }
    std::size_t on_chunk_data(string_view body, error_code&) override { return body.size(); }
    void on_finish_impl(error_code&) override {}

    static bool valid_host(string_view value);  // uri-host [":" port]
    // Copies the first element of a comma-separated list into `to` when it is an IPv4 or IPv6
    // address (no zone); returns its size, or 0.
    static std::size_t first_address(std::string_view list, std::array<char, 46>& to) noexcept;

    verb method_ = verb::unknown;
    std::string method_string_;
    std::string target_;
    unsigned version_ = 11;
    unsigned hosts_ = 0;
    bool host_valid_ = true;
    bool transfer_encoding_ = false;
    bool expect_continue_ = false;
    refusal refused_ = refusal::none;
    std::string_view deadline_header_;
    std::span<std::string const> forwarded_;
    request_fields fields_;
    bool keep_forwarded_for_ = false;
    bool forwarded_for_seen_ = false;
    std::uint8_t forwarded_for_size_ = 0;
    std::array<char, 46> forwarded_for_;  // an address and its terminating '\0'
};

// The path of a request target, without its query (it may carry secrets): of origin-form, what
// precedes '?'; of absolute-form (scheme://authority/path?query), the path alone ("/" if none), so
// that no userinfo shows either. Empty for anything else.
std::string_view path_without_query(std::string_view target) noexcept;

// The version of an HTTP/2 or later request line at the start of `head` (e.g. 20), else 0: Beast
// refuses every version but 1.0 and 1.1 alike, and these deserve 505 rather than 400.
unsigned unsupported_version(std::string_view head) noexcept;

}  // namespace fanout
