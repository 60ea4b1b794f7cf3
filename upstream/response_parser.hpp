#pragma once

#include "wire/guarded_parser.hpp"

#include <cstdint>
#include <string>

namespace fanout {

// Reads what a fetch needs of a response (status, body, whether the connection stays open) and
// skips the header fields, which beast::http::basic_fields would allocate one by one.
// Read it with wire::read_message().
class response_parser : public wire::guarded_parser<false> {
  public:
    unsigned status() const noexcept { return status_; }
    std::string const& reason() const noexcept { return reason_; }
    std::string& body() noexcept { return body_; }

  private:
    void on_request_impl(boost::beast::http::verb, string_view, string_view, int, error_code&) override {}
    void on_response_impl(int code, string_view reason, int, error_code&) override {
        status_ = static_cast<unsigned>(code);
        reason_.assign(reason.data(), reason.size());
    }
    void on_field_impl(boost::beast::http::field, string_view, string_view, error_code&) override {}
    void on_header_impl(error_code&) override {}
    void on_body_init_impl(boost::optional<std::uint64_t> const& length, error_code&) override {
        if (length) body_.reserve(static_cast<std::size_t>(*length));  // bounded by body_limit already
    }
    std::size_t on_body_impl(string_view data, error_code&) override {
        body_.append(data.data(), data.size());
        return data.size();
    }
    std::size_t on_chunk_data(string_view data, error_code&) override {
        body_.append(data.data(), data.size());
        return data.size();
    }
    void on_finish_impl(error_code&) override {}

    unsigned status_ = 0;
    std::string reason_;
    std::string body_;
};

}  // namespace fanout
