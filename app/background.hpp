#pragma once
// Threads that compute for the window (the worker, exact tiles, model loads, training, patching,
// generation, rollout rows, the decode plan) run below the UI thread: on two cores their threads
// would otherwise share, evenly, the time slices a frame needs with llvmpipe's rasterising
// threads and the UI thread.

namespace attnlab::app {

// Lowers the calling thread, and every thread it starts afterwards (an OpenMP team, OpenBLAS's
// threads: Linux threads inherit their creator's niceness), below the UI thread.
void run_below_the_ui();

}  // namespace attnlab::app
