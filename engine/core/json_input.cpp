#include "core/json_input.hpp"

#include <cmath>
#include <cstdio>
#include <limits>
#include <unordered_set>
#include <vector>

#include "core/utf8.hpp"

namespace attnlab {

using nlohmann::json;

namespace {

std::string where_in(std::string_view text, std::size_t position) {
  std::size_t line = 1, column = 1;
  for (std::size_t i = 0; i < position && i < text.size(); ++i) {
    if (text[i] == '\n') ++line, column = 1;
    else ++column;
  }
  return "line " + std::to_string(line) + ", column " + std::to_string(column);
}

// One pass over the events before the value is built: depth, duplicate keys, and the parser's
// own errors turned into messages without the library's "[json.exception...]" prefixes.
class Checker : public nlohmann::json_sax<json> {
 public:
  Checker(std::string_view text, int max_depth) : text_(text), max_depth_(max_depth) {}
  std::string error;

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override {
    keys_.emplace_back();
    return deeper();
  }
  bool key(string_t& k) override {
    if (!keys_.back().insert(k).second) {
      error = "the key \"" + utf8_sanitize(k.substr(0, 60)) + "\" appears twice in one object (" + here() + ")";
      return false;
    }
    return true;
  }
  bool end_object() override {
    keys_.pop_back();
    --depth_;
    return true;
  }
  bool start_array(std::size_t) override { return deeper(); }
  bool end_array() override {
    --depth_;
    return true;
  }
  bool parse_error(std::size_t position, const std::string& last_token, const nlohmann::detail::exception& e) override {
    if (e.id == 406) {  // out_of_range.406: a number that overflows a double
      error = "the number " + utf8_sanitize(last_token.substr(0, 40)) + " is too large (" + where_in(text_, position) + ")";
      return false;
    }
    std::string msg = e.what();
    if (const auto at = msg.find("] "); at != std::string::npos) msg = msg.substr(at + 2);
    error = "not valid JSON: " + utf8_sanitize(msg.substr(0, 200));
    return false;
  }
  // the SAX interface gives no position to its value events; the byte count so far is the
  // parser's, so nesting and duplicates are reported by their path instead
  std::string here() const { return "at depth " + std::to_string(depth_); }

 private:
  bool deeper() {
    if (++depth_ > max_depth_) {
      error = "nested more than " + std::to_string(max_depth_) + " levels deep";
      return false;
    }
    return true;
  }
  std::string_view text_;
  int max_depth_;
  int depth_ = 0;
  std::vector<std::unordered_set<std::string>> keys_;
};

}  // namespace

bool parse_json_input(std::string_view text, json& out, std::string& error, int max_depth) {
  try {
    Checker check(text, max_depth);
    if (!json::sax_parse(text.begin(), text.end(), &check)) {
      error = check.error.empty() ? "not valid JSON" : check.error;
      return false;
    }
    out = json::parse(text.begin(), text.end(), nullptr, false);
    if (out.is_discarded()) {
      error = "not valid JSON";
      return false;
    }
    return true;
  } catch (const std::bad_alloc&) {
    error = "out of memory reading JSON";
  } catch (const std::exception& e) {
    error = std::string("not valid JSON: ") + e.what();
  }
  return false;
}

std::string json_excerpt(const json& v) {
  std::string s = v.dump(-1, ' ', false, json::error_handler_t::replace);
  if (s.size() > 60) s = utf8_sanitize(s.substr(0, 57)) + "...";
  return s;
}

namespace {

const json* member(const json& obj, std::string_view key) {
  if (!obj.is_object()) return nullptr;
  const auto it = obj.find(std::string(key));
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

bool absent(const json& obj, const json* v, std::string_view key, bool required, std::string& error,
            std::string_view where) {
  if (v) return false;
  if (required)
    error = std::string(where) + ": '" + std::string(key) + "' is " +
            (obj.is_object() && obj.contains(std::string(key)) ? "null; it must be set" : "missing");
  return true;
}

bool wrong(std::string_view key, const char* expected, const json& v, std::string& error, std::string_view where) {
  error = std::string(where) + ": '" + std::string(key) + "' must be " + expected + ", not " + json_excerpt(v);
  return false;
}

std::string fmt(double x) {
  char b[40];
  std::snprintf(b, sizeof b, "%.9g", x);
  return b;
}

}  // namespace

bool json_get(const json& obj, std::string_view key, std::string& out, std::string& error, std::string_view where,
              bool required) {
  const json* v = member(obj, key);
  if (absent(obj, v, key, required, error, where)) return !required;
  if (!v->is_string()) return wrong(key, "a string", *v, error, where);
  out = v->get<std::string>();
  return true;
}

bool json_get(const json& obj, std::string_view key, bool& out, std::string& error, std::string_view where,
              bool required) {
  const json* v = member(obj, key);
  if (absent(obj, v, key, required, error, where)) return !required;
  if (!v->is_boolean()) return wrong(key, "true or false", *v, error, where);
  out = v->get<bool>();
  return true;
}

bool json_get(const json& obj, std::string_view key, int& out, long long lo, long long hi, std::string& error,
              std::string_view where, bool required) {
  const json* v = member(obj, key);
  if (absent(obj, v, key, required, error, where)) return !required;
  const std::string range = "a whole number from " + std::to_string(lo) + " to " + std::to_string(hi);
  // 1e3 and 4.0 are whole numbers as written in many configs; 1.5 and 1e30 are not
  if (v->is_number_float()) {
    const double d = v->get<double>();
    if (!(d == std::floor(d)) || !(d >= double(lo) && d <= double(hi))) return wrong(key, range.c_str(), *v, error, where);
    out = static_cast<int>(d);
    return true;
  }
  if (v->is_number_unsigned()) {
    if (v->get<unsigned long long>() > static_cast<unsigned long long>(std::max(hi, 0LL)))
      return wrong(key, range.c_str(), *v, error, where);
  } else if (!v->is_number_integer()) {
    return wrong(key, range.c_str(), *v, error, where);
  }
  const long long x = v->is_number_unsigned() ? static_cast<long long>(v->get<unsigned long long>()) : v->get<long long>();
  if (x < lo || x > hi) return wrong(key, range.c_str(), *v, error, where);
  out = static_cast<int>(x);
  return true;
}

bool json_get(const json& obj, std::string_view key, double& out, double lo, double hi, std::string& error,
              std::string_view where, bool required) {
  const json* v = member(obj, key);
  if (absent(obj, v, key, required, error, where)) return !required;
  const std::string range = "a number from " + fmt(lo) + " to " + fmt(hi);
  if (!v->is_number()) return wrong(key, range.c_str(), *v, error, where);
  const double d = v->get<double>();
  if (!(d >= lo && d <= hi)) return wrong(key, range.c_str(), *v, error, where);
  out = d;
  return true;
}

}  // namespace attnlab
