#pragma once
// Threads that compute for the window (the worker, exact tiles, model loads, training, patching,
// generation, rollout rows, the decode plan) run below the UI thread: on two cores their threads
// would otherwise share, evenly, the time slices a frame needs with llvmpipe's rasterising
// threads and the UI thread.

namespace attnlab::app {

// Lowers the calling thread, and every thread it starts afterwards (an OpenMP team, OpenBLAS's
// threads: Linux threads inherit their creator's niceness), below the UI thread.
void run_below_the_ui();

// Wakes the UI thread from its wait for events, so that what a background thread has just
// finished (a result, a tile) is shown in the next frame, not after the wait's timeout (the
// window waits up to 200 ms between frames while the worker computes). Any thread may call it.
void wake_the_ui();

}  // namespace attnlab::app
