#pragma once

#include <boost/beast/http/basic_parser.hpp>

#include <string>

namespace fanout::server {

// Reads what fanout needs of a request (method, target, version, keep-alive) and skips header fields
// and body, which a general message would store (and allocate for). Limits as on any Beast parser:
// header_limit() and body_limit().
class request_parser : public boost::beast::http::basic_parser<true> {
  public:
    using verb = boost::beast::http::verb;
    using error_code = boost::beast::error_code;
    using string_view = boost::beast::string_view;

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
    void on_chunk_header_impl(std::uint64_t, string_view, error_code&) override {}
    std::size_t on_chunk_body_impl(std::uint64_t, string_view body, error_code&) override {
        return body.size();
    }
    void on_finish_impl(error_code&) override {}

    verb method_ = verb::unknown;
    std::string method_string_;
    std::string target_;
    unsigned version_ = 11;
};

}  // namespace fanout::server
