// JSON from outside the program (session files, config.json, tokenizer files, safetensors
// headers, preferences, lessons): parsed with the checks nlohmann-json does not make, and read
// field by field with messages that name the file, the key and what was expected. Nothing in
// here throws.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace attnlab {

// Deeper than this is refused: nlohmann-json parses iteratively, but copying, comparing and
// printing a value recurse, and ~100k levels overflow the stack. Real files nest < 10 deep.
inline constexpr int kMaxJsonDepth = 64;

// Parses `text`, refusing (false, with a one-line reason in `error` that says where):
// invalid JSON, nesting deeper than max_depth, the same key twice in one object (which one would
// win is arbitrary), and numbers a double cannot hold (1e400).
bool parse_json_input(std::string_view text, nlohmann::json& out, std::string& error, int max_depth = kMaxJsonDepth);

// A value as text for a message: compact, invalid UTF-8 replaced, long values cut at ~60 bytes.
std::string json_excerpt(const nlohmann::json& v);

// obj[key] as the type asked for. Absent (or null) leaves `out` as it is and returns true unless
// `required`. Wrong type or out of range: false with "<where>: '<key>' must be ..., not <value>".
bool json_get(const nlohmann::json& obj, std::string_view key, std::string& out, std::string& error,
              std::string_view where, bool required = false);
bool json_get(const nlohmann::json& obj, std::string_view key, bool& out, std::string& error, std::string_view where,
              bool required = false);
bool json_get(const nlohmann::json& obj, std::string_view key, int& out, long long lo, long long hi, std::string& error,
              std::string_view where, bool required = false);
bool json_get(const nlohmann::json& obj, std::string_view key, double& out, double lo, double hi, std::string& error,
              std::string_view where, bool required = false);

}  // namespace attnlab
