#include "core/memory.hpp"

#include "core/tensor.hpp"

#include <limits>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

// The one definition of the alignment symbol tensor.hpp refers to (see there).
extern "C" const int ATTNLAB_EIGEN_ALIGN_SYMBOL = EIGEN_MAX_ALIGN_BYTES;

namespace attnlab {

void tune_allocator() {
#if defined(__GLIBC__)
  // Blocks under 32 MB (glibc's largest allowed threshold; larger values are refused) come from
  // the heap: a 1024 x 1024 float matrix is 4 MB ...
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  // ... and up to 2 GB of free heap is kept for reuse (mallopt's int maximum): a GPT-2-small
  // forward at 1024 tokens frees and asks again for 1.2 GB of per-head matrices, which a 1 GB
  // threshold handed back to the kernel to be zeroed again (2.76 s -> 1.5 s, measured)
  mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max());
  // One arena: per-thread arenas hand freed memory back with MADV_DONTNEED whatever the trim
  // threshold, so buffers freed by OpenMP threads would page-fault again (341k faults measured
  // in one benchmark run before this line). Our allocations are few and large: no contention.
  mallopt(M_ARENA_MAX, 1);
#endif
}

}  // namespace attnlab
