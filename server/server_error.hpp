#pragma once

#include <boost/system/error_code.hpp>

#include <exception>
#include <fanout/server_error.hpp>

namespace fanout {

// The code a server operation completes with when it threw `e`: a system_error's own code, else
// server_error::internal; empty without an exception.
boost::system::error_code code_of_exception(std::exception_ptr const& e) noexcept;

}  // namespace fanout
