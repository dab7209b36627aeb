#include "background.hpp"

#include <GLFW/glfw3.h>

#include <sys/resource.h>
#include <unistd.h>

namespace attnlab::app {

void run_below_the_ui() {
  // Per thread on Linux (setpriority on a thread id); a failure leaves the thread as it was.
  // Nice 5, not 19 or SCHED_IDLE: those leave a computation 1.5 % of a core whenever another
  // program (a build, a browser, a second test under ctest -j2) keeps the cores busy.
  ::setpriority(PRIO_PROCESS, static_cast<id_t>(::gettid()), 5);
}

void wake_the_ui() { glfwPostEmptyEvent(); }  // thread-safe; before glfwInit only an error callback

}  // namespace attnlab::app
