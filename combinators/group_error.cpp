#include "combinators/fixed_category.hpp"

#include <fanout/combinators.hpp>

namespace fanout {

namespace {

std::string group_message(int ev) {
    switch (static_cast<group_error>(ev)) {
        case group_error::timeout:
            return "still running at the group's deadline";
        case group_error::exception:
            return "threw an exception";
        case group_error::failed:
            return "completed with a value taken as a failure";
    }
    return "unknown group error";
}

}  // namespace

boost::system::error_category const& group_category() noexcept {
    static constexpr detail::fixed_category category{
        0x8f3a'6c1d'52e4'b907ULL, "fanout.group", &group_message};
    return category;
}

}  // namespace fanout
