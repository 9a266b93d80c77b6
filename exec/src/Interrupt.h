// Ctrl-C while gyrus waits on stages it does not run itself (worker processes of
// `--jobs`, Slurm tasks): a SIGINT handler that only sets a flag, installed for the
// guard's lifetime, the previous handler restored afterwards.
#pragma once

#include <atomic>
#include <csignal>

namespace gyrus::exec::detail {

/// Set by SIGINT while an InterruptGuard lives (a lock-free atomic: safe in a handler).
inline std::atomic<bool> interrupted{false};

inline void onInterrupt(int) { interrupted = true; }

class InterruptGuard {
 public:
  InterruptGuard() {
    interrupted = false;
    struct sigaction sa {};
    sa.sa_handler = onInterrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &previous_);
  }
  ~InterruptGuard() { sigaction(SIGINT, &previous_, nullptr); }
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;

 private:
  struct sigaction previous_ {};
};

}  // namespace gyrus::exec::detail
