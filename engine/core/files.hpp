// Files in and out, for everything that reads or writes one (CLI, window, model loaders).
// Reading refuses what is not a regular file (a FIFO would block forever, /dev/zero would grow
// without bound) and what is larger than the caller says such a file can be. Writing is whole or
// not at all: a temporary created exclusively beside the target, fsync, rename, fsync of the
// folder; a target that exists but is not a regular file (/dev/null, a FIFO, a terminal) is
// written through, never renamed over.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

namespace attnlab {

// Size limits for the files attnlab reads, each far above any real file of its kind.
inline constexpr std::size_t kMaxSessionFileBytes = 64u << 20;  // a session (1 MB of text, custom cells)
inline constexpr std::size_t kMaxConfigFileBytes = 16u << 20;   // config.json, tokenizer_config.json, prefs, lessons
inline constexpr std::size_t kMaxTokenizerFileBytes = 256u << 20;  // tokenizer.json, vocab.json, merges.txt, vocab.txt

// The whole file, or false with "<path>: <reason>". "-" reads standard input (with the same
// limit). `what` names the kind of file in the size message ("a tokenizer file").
bool read_file_limited(const std::string& path, std::size_t max_bytes, std::string& out, std::string& error,
                       const char* what = "this file");

// True when path names a regular file (following links). Directories, FIFOs and devices: false.
bool is_regular_file(const std::string& path);

// Writes `bytes` to `path` whole or not at all (see above). false with a one-line reason; the
// old file, if any, is untouched.
bool write_file_atomic(const std::string& path, const std::string& bytes, std::string& error);

// The same for output made in pieces (a large Result): `produce` hands each piece to `put`,
// which returns false once writing failed (produce should then stop and return false).
using Put = std::function<bool(std::string_view)>;
bool write_file_atomic(const std::string& path, const std::function<bool(const Put& put)>& produce, std::string& error);

// The temporaries write_file_atomic makes are named ".<name>.attnlab-tmp-<pid>-XXXXXX" (and,
// before that, "<name>.tmp-<pid>"). Removes those in `dir` whose process is gone (killed during
// a save); returns how many.
int remove_stale_temporaries(const std::string& dir);

}  // namespace attnlab
