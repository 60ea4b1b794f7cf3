#include <fanout/error.hpp>

namespace fanout::upstream {

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
        case error_kind::cancelled:
            return "cancelled";
    }
    return "unknown";
}

namespace {

// Boost.System's categories are static objects never deleted through a base pointer: its
// destructor is protected and not virtual by design.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class upstream_category_impl final : public boost::system::error_category {
  public:
    // A fixed identity, so that codes compare equal across shared libraries.
    constexpr upstream_category_impl() noexcept : error_category(0x5b1e'07c4'93a2'd6f1ULL) {}

    char const* name() const noexcept override { return "fanout.upstream"; }

    std::string message(int ev) const override { return std::string(to_string(static_cast<error_kind>(ev))); }
};
#pragma GCC diagnostic pop

}  // namespace

boost::system::error_category const& upstream_category() noexcept {
    static constexpr upstream_category_impl category;
    return category;
}

}  // namespace fanout::upstream
