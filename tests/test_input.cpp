// Input from outside and what it may cost: JSON with the checks nlohmann-json does not make,
// files that are not files, atomic writes, stale temporaries, and the time/memory budget.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "session/cost.hpp"
#include "core/files.hpp"
#include "core/json_input.hpp"
#include "session/session.hpp"

using namespace attnlab;
namespace fs = std::filesystem;

namespace {
std::string scratch(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("attnlab-input-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  return (dir / name).string();
}
std::string nested(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }
bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
}  // namespace

TEST_CASE("json input: nesting up to the limit is read, deeper is refused, 100k levels do not crash") {
  nlohmann::json j;
  std::string err;
  CHECK(parse_json_input(nested(kMaxJsonDepth), j, err));
  CHECK_FALSE(parse_json_input(nested(kMaxJsonDepth + 1), j, err));
  CHECK(has(err, "nested more than 64 levels deep"));
  CHECK_FALSE(parse_json_input("{\"a\": " + nested(100000) + "}", j, err));
  CHECK(has(err, "nested more than 64 levels deep"));
}

TEST_CASE("json input: duplicate keys, overflowing numbers and invalid JSON are refused with where") {
  nlohmann::json j;
  std::string err;
  CHECK_FALSE(parse_json_input(R"({"a": 1, "b": {"c": 1, "c": 2}})", j, err));
  CHECK(has(err, "the key \"c\" appears twice"));
  CHECK(parse_json_input(R"({"c": 1, "b": {"c": 2}})", j, err));  // the same key in two objects is fine
  CHECK_FALSE(parse_json_input(R"({"t": 1e400})", j, err));
  CHECK(has(err, "the number 1e400 is too large"));
  CHECK_FALSE(parse_json_input("{\"t\": }", j, err));
  CHECK(has(err, "not valid JSON: parse error at line 1, column 7"));
  CHECK_FALSE(has(err, "json.exception"));
}

TEST_CASE("json input: typed fields say the file, the key and what was expected") {
  const auto j = nlohmann::json::parse(R"({"s": 3, "i": 2.5, "big": 18446744073709551615, "neg": -1, "ok": 4.0, "b": "yes", "n": null})");
  std::string err, s;
  int i = 0;
  double d = 0;
  bool b = false;
  CHECK_FALSE(json_get(j, "s", s, err, "config.json"));
  CHECK(err == "config.json: 's' must be a string, not 3");
  CHECK_FALSE(json_get(j, "i", i, 1, 10, err, "config.json"));
  CHECK(err == "config.json: 'i' must be a whole number from 1 to 10, not 2.5");
  CHECK_FALSE(json_get(j, "big", i, 1, 10, err, "config.json"));
  CHECK(has(err, "not 18446744073709551615"));
  CHECK_FALSE(json_get(j, "neg", d, 1e-30, 1.0, err, "config.json"));
  CHECK(has(err, "'neg' must be a number from 1e-30 to 1, not -1"));
  CHECK(json_get(j, "ok", i, 1, 10, err, "config.json"));
  CHECK(i == 4);
  CHECK_FALSE(json_get(j, "b", b, err, "config.json"));
  CHECK(err == "config.json: 'b' must be true or false, not \"yes\"");
  i = 7;
  CHECK(json_get(j, "n", i, 1, 10, err, "config.json"));  // null: absent, the default stays
  CHECK(i == 7);
  CHECK_FALSE(json_get(j, "missing", i, 1, 10, err, "config.json", true));
  CHECK(err == "config.json: 'missing' is missing");
  CHECK_FALSE(json_get(j, "n", i, 1, 10, err, "config.json", true));
  CHECK(err == "config.json: 'n' is null; it must be set");
}

TEST_CASE("files: FIFOs, devices, directories and oversized files are refused at once, by name") {
  std::string out, err;
  const std::string fifo = scratch("fifo");
  ::unlink(fifo.c_str());
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  const auto t0 = std::chrono::steady_clock::now();
  CHECK_FALSE(read_file_limited(fifo, 1 << 20, out, err));  // nobody writes to it: must not block
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(2));
  CHECK(err == fifo + ": is not a regular file (a device, FIFO or socket)");
  CHECK_FALSE(read_file_limited("/dev/zero", 1 << 20, out, err));
  CHECK(has(err, "/dev/zero: is not a regular file"));
  CHECK_FALSE(read_file_limited(fs::temp_directory_path().string(), 1 << 20, out, err));
  CHECK(has(err, "is a directory"));
  const std::string big = scratch("big.json");
  std::ofstream(big) << std::string(5000, 'x');
  CHECK_FALSE(read_file_limited(big, 4096, out, err, "a session file"));
  CHECK(err == big + ": is 4.9 KB; the limit for a session file is 4.0 KB");
  CHECK(read_file_limited(big, 8192, out, err));
  CHECK(out.size() == 5000);
  ::unlink(fifo.c_str());
}

TEST_CASE("files: atomic writes replace regular files, write through devices and links, leave no temporary") {
  std::string err;
  const std::string path = scratch("out.txt");
  CHECK(write_file_atomic(path, "first", err));
  CHECK(write_file_atomic(path, "second", err));
  std::ifstream in(path);
  std::string got((std::istreambuf_iterator<char>(in)), {});
  CHECK(got == "second");
  CHECK(write_file_atomic("/dev/null", "into the void", err));
  struct stat st {};
  REQUIRE(::stat("/dev/null", &st) == 0);
  CHECK(S_ISCHR(st.st_mode));  // still the device: never renamed over
  const std::string target = scratch("target.txt"), link = scratch("link.txt");
  std::ofstream(target) << "old";
  ::unlink(link.c_str());
  REQUIRE(::symlink(target.c_str(), link.c_str()) == 0);
  CHECK(write_file_atomic(link, "new", err));
  CHECK(fs::is_symlink(link));
  std::ifstream t(target);
  CHECK(std::string((std::istreambuf_iterator<char>(t)), {}) == "new");
  CHECK_FALSE(write_file_atomic(fs::temp_directory_path().string(), "x", err));
  CHECK(has(err, "is a directory"));
  CHECK_FALSE(write_file_atomic("/proc/no-such-dir/x.json", "x", err));
  CHECK(has(err, "cannot write: No such file or directory"));  // errno read before anything else ran
  for (const auto& e : fs::directory_iterator(fs::path(path).parent_path()))
    CHECK_MESSAGE(e.path().filename().string().find(".attnlab-tmp-") == std::string::npos, e.path());
}

TEST_CASE("files: stale temporaries of dead processes are removed, those of live ones kept") {
  const fs::path dir = fs::path(scratch("stale")).concat("-dir");
  fs::create_directories(dir);
  // a pid that is not running: the highest possible is never reached on this machine
  const std::string dead = "4194303", mine = std::to_string(::getpid());
  for (const std::string& name : {".prefs.json.attnlab-tmp-" + dead + "-Ab12Cd", "session.json.tmp-" + dead,
                                  ".prefs.json.attnlab-tmp-" + mine + "-Zz99Yy", std::string("session.json.tmp-notapid"), std::string("keep.json")})
    std::ofstream(dir / name) << "x";
  CHECK(remove_stale_temporaries(dir.string()) == 2);
  CHECK(fs::exists(dir / (".prefs.json.attnlab-tmp-" + mine + "-Zz99Yy")));
  CHECK(fs::exists(dir / "session.json.tmp-notapid"));
  CHECK(fs::exists(dir / "keep.json"));
  CHECK_FALSE(fs::exists(dir / ("session.json.tmp-" + dead)));
}

TEST_CASE("cost: sessions that would run for minutes or exhaust memory are refused before computing") {
  Session s;
  s.text = "one two three";
  s.model.d_model = 4096;
  s.model.n_heads = 128;
  s.model.n_layers = 24;
  const auto v = validate(s);
  REQUIRE_FALSE(v.ok());
  CHECK(has(v.problems.back(), "of it the layers' weights"));
  s.model = {};
  s.text.clear();
  for (int i = 0; i < 8192; ++i) s.text += std::to_string(i).insert(0, 1, 'w') + " ";
  s.attention.mask.kind = MaskKind::none;
  s.attention.kernel.kind = KernelKind::performer;
  s.attention.kernel.features = 8192;
  const auto p = validate(s);
  REQUIRE_FALSE(p.ok());
  CHECK(has(p.problems.back(), "or fewer features"));
  CHECK(has(p.problems.back(), "the limit is 60 s"));
  // the same text with the exact kernel fits, and each path needs more than computing alone
  s.attention.kernel = {};
  CHECK(validate(s).ok());
  const Cost c = estimate_cost(s, 8192, 8192);
  CHECK(bytes_for(s, c, 8192, 8192, CostUse::export_matrix) > bytes_for(s, c, 8192, 8192, CostUse::compute));
  CHECK(bytes_for(s, c, 8192, 8192, CostUse::window) > bytes_for(s, c, 8192, 8192, CostUse::compute));
  CHECK(memory_budget_bytes() <= 6.0 * (1ull << 30));
}
