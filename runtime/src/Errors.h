// The runtime's error classes. A UserError is the user's to fix (the message says how);
// anything else escaping a stage is reported as an internal error.
#pragma once

#include <stdexcept>

namespace gyrus::rt {

/// A problem in the user's experiment or run store that the user can fix. The message
/// says what is wrong and how to fix it.
class UserError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace gyrus::rt
