// attnlab-cli: headless commands over the same engine as the window.
//   attnlab-cli compute SESSION.json [-o OUT.json]   Result as JSON (stdout without -o)
//   attnlab-cli options                               every session option as JSON
// Errors: one line on stderr, exit 1 (2 for usage); an output file is written whole or not at all.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "memory.hpp"
#include "pipeline.hpp"
#include "result_json.hpp"
#include "session.hpp"

namespace fs = std::filesystem;
using namespace attnlab;

namespace {

int fail(const std::string& msg) {
  std::cerr << "attnlab-cli: " << msg << "\n";
  return 1;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : "; ") + x;
  return s;
}

bool read_file(const std::string& path, std::string& out, std::string& err) {
  std::error_code ec;
  if (path != "-" && fs::is_directory(path, ec)) {
    err = path + ": is a directory";
    return false;
  }
  std::ifstream f;
  std::istream* in = &std::cin;
  if (path != "-") {
    f.open(path, std::ios::binary);
    if (!f) {
      err = path + ": cannot open: " + std::strerror(errno);
      return false;
    }
    in = &f;
  }
  std::ostringstream ss;
  ss << in->rdbuf();
  out = ss.str();
  return true;
}

int compute_command(const std::string& session_path, const std::string& out_path) {
  std::string text, err;
  if (!read_file(session_path, text, err)) return fail(err);
  auto parsed = parse_session(text);
  if (!parsed.session) return fail(session_path + ": " + join(parsed.problems));
  Outcome o = compute(*parsed.session);
  if (!o.result) return fail(session_path + ": " + join(o.problems));

  if (out_path.empty() || out_path == "-") {
    write_result_json(std::cout, *o.result);
    std::cout.flush();
    return std::cout ? 0 : fail("writing to standard output failed");
  }
  // Write beside the target and rename, so a reader never sees a partial file.
  const fs::path target(out_path);
  const fs::path tmp = target.string() + ".tmp-" + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::binary);
    if (!f) return fail(out_path + ": cannot write: " + std::strerror(errno));
    write_result_json(f, *o.result);
    f.flush();
    if (!f) {
      std::error_code ec;
      fs::remove(tmp, ec);
      return fail(out_path + ": write failed (disk full?)");
    }
  }
  std::error_code ec;
  fs::rename(tmp, target, ec);
  if (ec) {
    fs::remove(tmp, ec);
    return fail(out_path + ": cannot replace: " + ec.message());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  attnlab::tune_allocator();
  CLI::App app{"attnlab-cli: compute attention sessions without a window"};
  app.require_subcommand(1);

  std::string session_path, out_path;
  auto* compute_cmd = app.add_subcommand("compute", "compute a session and write the Result as JSON");
  compute_cmd->add_option("session", session_path, "session JSON file (- for stdin)")->required();
  compute_cmd->add_option("-o,--output", out_path, "output file (default: stdout)");

  auto* options_cmd = app.add_subcommand("options", "print every session option with its allowed values as JSON");

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "attnlab-cli: " << e.what() << " (see attnlab-cli --help)\n";
    return 2;
  }

  try {
    if (*options_cmd) {
      std::cout << options_json() << "\n";
      return 0;
    }
    if (*compute_cmd) return compute_command(session_path, out_path);
  } catch (const std::bad_alloc&) {
    return fail("out of memory");
  } catch (const std::exception& e) {
    return fail(std::string("internal error: ") + e.what());
  }
  return 2;
}
