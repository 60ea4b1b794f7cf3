#pragma once

#include "wire/guarded_parser.hpp"

#include <string>

namespace fanout::server {

// Reads what fanout needs of a request (method, target, version, keep-alive) and skips header fields
// and body, which a general message would store (and allocate for). Limits as on any Beast parser:
// header_limit() and body_limit(). Read it with wire::read_message().
class request_parser : public wire::guarded_parser<true> {
  public:
    using verb = boost::beast::http::verb;

    verb method() const noexcept { return method_; }
    std::string const& method_string() const noexcept { return method_string_; }
    std::string const& target() const noexcept { return target_; }
    unsigned version() const noexcept { return version_; }

  private:
    void on_request_impl(verb method, string_view method_str, string_view target, int version, error_code&)
        override {
        method_ = method;
        method_string_.assign(method_str.data(), method_str.size());
        target_.assign(target.data(), target.size());
        version_ = static_cast<unsigned>(version);
    }
    void on_response_impl(int, string_view, int, error_code&) override {}
    void on_field_impl(boost::beast::http::field, string_view, string_view, error_code&) override {}
    void on_header_impl(error_code&) override {}
    void on_body_init_impl(boost::optional<std::uint64_t> const&, error_code&) override {}
    std::size_t on_body_impl(string_view body, error_code&) override { return body.size(); }
    std::size_t on_chunk_data(string_view body, error_code&) override { return body.size(); }
    void on_finish_impl(error_code&) override {}

    verb method_ = verb::unknown;
    std::string method_string_;
    std::string target_;
    unsigned version_ = 11;
};

}  // namespace fanout::server
