#include <fanout/combinators.hpp>

namespace fanout {

namespace {

// Boost.System's categories are static objects never deleted through a base pointer: its
// destructor is protected and not virtual by design.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class group_category_impl final : public boost::system::error_category {
  public:
    // A fixed identity, so that codes compare equal across shared libraries.
    constexpr group_category_impl() noexcept : error_category(0x8f3a'6c1d'52e4'b907ULL) {}

    char const* name() const noexcept override { return "fanout.group"; }

    std::string message(int ev) const override {
        switch (static_cast<group_error>(ev)) {
            case group_error::timeout:
                return "still running at the group's deadline";
            case group_error::exception:
                return "threw an exception";
        }
        return "unknown group error";
    }
};
#pragma GCC diagnostic pop

}  // namespace

boost::system::error_category const& group_category() noexcept {
    static constexpr group_category_impl category;
    return category;
}

}  // namespace fanout
