// The runtime's error classes. A UserError is the user's to fix (the message says how);
// anything else escaping a stage is reported as an internal error.
#pragma once

#include <stdexcept>
#include <string>

namespace gyrus::rt {

/// A problem in the user's experiment or run store that the user can fix. The message
/// says what is wrong and how to fix it.
class UserError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A stage the checker should have rejected reached the runtime: gyrus's bug, reported
/// as an internal error. The runtime trusts the verified IR and asserts what it relies
/// on (expectIr over ir::verify) instead of re-validating it as the user's mistake, which would hide
/// checker bugs.
class InternalError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
};

/// Asserts a stage's invariants (`violation`: what ir::verify found, empty when none).
inline void expectIr(const std::string& violation) {
  if (!violation.empty())
    throw InternalError("the stage violates an invariant the checker guarantees (" + violation +
                        "); this is a bug in gyrus, please report it with the experiment file");
}

}  // namespace gyrus::rt
