#pragma once

#include <boost/system/error_category.hpp>

#include <string>

namespace fanout::detail {

// An error category with a fixed identity (so that codes compare equal across shared libraries),
// a name and a message function: what each of fanout's categories needs.
// Boost.System's categories are static objects never deleted through a base pointer: its
// destructor is protected and not virtual by design.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wnon-virtual-dtor"
class fixed_category final : public boost::system::error_category {
  public:
    constexpr fixed_category(unsigned long long id, char const* label, std::string (*describe)(int)) noexcept
        : error_category(id), name_(label), message_(describe) {}

    char const* name() const noexcept override { return name_; }
    std::string message(int ev) const override { return message_(ev); }

  private:
    char const* name_;
    std::string (*message_)(int);
};
#pragma GCC diagnostic pop

}  // namespace fanout::detail
