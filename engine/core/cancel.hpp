// The cancel signal: a flag another thread sets (the window's Cancel, Esc, a newer edit) and long
// computations poll. A computation that stops for it says so by type, never by an error string.
#pragma once

#include <atomic>
#include <string>

namespace attnlab {

using CancelFlag = std::atomic<bool>;

inline bool cancel_requested(const CancelFlag* c) { return c && c->load(std::memory_order_relaxed); }

// Why something long did not finish: cancelled, or a problem in one line.
struct Failure {
  bool cancelled = false;
  std::string message;  // empty when cancelled
};

}  // namespace attnlab
