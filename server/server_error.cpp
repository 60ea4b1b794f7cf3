#include "server/server_error.hpp"

#include "combinators/fixed_category.hpp"

#include <boost/system/system_error.hpp>

#include <exception>
#include <fanout/server_error.hpp>

namespace fanout {

namespace {

std::string server_message(int ev) {
    switch (static_cast<server_error>(ev)) {
        case server_error::internal:
            return "internal error (an unexpected exception, logged)";
    }
    return "unknown server error";
}

}  // namespace

boost::system::error_category const& server_category() noexcept {
    static constexpr detail::fixed_category category{
        0x3c71'9e02'a4d5'6b18ULL, "fanout.server", &server_message};
    return category;
}

boost::system::error_code code_of_exception(std::exception_ptr const& e) noexcept {
    if (!e) return {};
    try {
        std::rethrow_exception(e);
    } catch (boost::system::system_error const& se) {
        return se.code();
    } catch (...) {
        return server_error::internal;
    }
}

}  // namespace fanout
