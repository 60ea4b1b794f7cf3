#include "combinators/fixed_category.hpp"

#include <fanout/error.hpp>

namespace fanout {

std::string_view to_string(error_kind kind) noexcept {
    switch (kind) {
        case error_kind::timeout:
            return "timeout";
        case error_kind::connect:
            return "connect";
        case error_kind::status:
            return "status";
        case error_kind::invalid_json:
            return "invalid_json";
        case error_kind::too_large:
            return "too_large";
        case error_kind::protocol:
            return "protocol";
        case error_kind::circuit_open:
            return "circuit_open";
        case error_kind::tls:
            return "tls";
        case error_kind::cancelled:
            return "cancelled";
    }
    return "unknown";
}

std::string_view to_string(cancel_reason reason) noexcept {
    switch (reason) {
        case cancel_reason::client_gone:
            return "client_gone";
        case cancel_reason::sibling_failed:
            return "sibling_failed";
        case cancel_reason::deadline:
            return "deadline";
        case cancel_reason::shutdown:
            return "shutdown";
        case cancel_reason::hedge_lost:
            return "hedge_lost";
    }
    return "unknown";
}

std::string_view to_string(request_outcome outcome) noexcept {
    switch (outcome) {
        case request_outcome::ok:
            return "ok";
        case request_outcome::error:
            return "error";
        case request_outcome::cancelled:
            return "cancelled";
    }
    return "unknown";
}

namespace {

std::string kind_message(int ev) {
    return std::string(to_string(static_cast<error_kind>(ev)));
}

}  // namespace

boost::system::error_category const& upstream_category() noexcept {
    static constexpr detail::fixed_category category{
        0x5b1e'07c4'93a2'd6f1ULL, "fanout.upstream", &kind_message};
    return category;
}

}  // namespace fanout
