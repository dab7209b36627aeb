#include "core/files.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <regex>
#include <vector>

namespace attnlab {

namespace {

std::string human_bytes(std::size_t n) {
  char b[32];
  if (n >= (1u << 20)) std::snprintf(b, sizeof b, "%.1f MB", n / 1048576.0);
  else if (n >= 1024) std::snprintf(b, sizeof b, "%.1f KB", n / 1024.0);
  else std::snprintf(b, sizeof b, "%zu bytes", n);
  return b;
}

// Reads fd to the end, at most max_bytes (+1 to notice more).
bool read_all(int fd, std::size_t max_bytes, std::string& out, std::string& reason) {
  out.clear();
  char buf[1 << 16];
  for (;;) {
    const ssize_t got = ::read(fd, buf, sizeof buf);
    if (got == 0) return true;
    if (got < 0) {
      if (errno == EINTR) continue;
      reason = std::string("cannot read: ") + std::strerror(errno);
      return false;
    }
    if (out.size() + static_cast<std::size_t>(got) > max_bytes) {
      reason = "is larger than " + human_bytes(max_bytes);
      return false;
    }
    out.append(buf, static_cast<std::size_t>(got));
  }
}

bool write_all(int fd, std::string_view bytes, int& err) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      err = errno;
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  return true;
}

std::string parent_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string name_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

}  // namespace

bool read_file_limited(const std::string& path, std::size_t max_bytes, std::string& out, std::string& error,
                       const char* what) {
  if (path == "-") {
    std::string reason;
    if (!read_all(STDIN_FILENO, max_bytes, out, reason)) {
      error = "standard input " + reason + (reason.starts_with("is larger") ? std::string(", the limit for ") + what : "");
      return false;
    }
    return true;
  }
  // O_NONBLOCK: opening a FIFO that nobody writes to must not block; it is refused below
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
  if (fd < 0) {
    error = path + ": cannot open: " + std::strerror(errno);
    return false;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    error = path + ": cannot read: " + std::strerror(errno);
    ::close(fd);
    return false;
  }
  if (!S_ISREG(st.st_mode)) {
    error = path + (S_ISDIR(st.st_mode) ? ": is a directory" : ": is not a regular file (a device, FIFO or socket)");
    ::close(fd);
    return false;
  }
  if (static_cast<std::uint64_t>(st.st_size) > max_bytes) {
    error = path + ": is " + human_bytes(static_cast<std::size_t>(st.st_size)) + "; the limit for " + what + " is " +
            human_bytes(max_bytes);
    ::close(fd);
    return false;
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  std::string reason;
  const bool ok = read_all(fd, max_bytes, out, reason);
  ::close(fd);
  if (!ok) error = path + ": " + reason;
  return ok;
}

bool is_regular_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

bool write_file_atomic(const std::string& path, const std::string& bytes, std::string& error) {
  return write_file_atomic(path, [&](const Put& put) { return put(bytes); }, error);
}

bool write_file_atomic(const std::string& path_in, const std::function<bool(const Put&)>& produce, std::string& error) {
  std::string path = path_in;
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
    // a link: replace what it points to (as editors do), not the link itself
    if (char* real = ::realpath(path.c_str(), nullptr)) {
      path = real;
      std::free(real);
    }
  }
  const bool exists = ::stat(path.c_str(), &st) == 0;
  if (exists && S_ISDIR(st.st_mode)) {
    error = path_in + ": is a directory";
    return false;
  }
  if (exists && !S_ISREG(st.st_mode)) {
    // a device, FIFO or socket: write through it; renaming over it would replace it
    const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
      const int e = errno;
      error = path_in + ": cannot write: " + (e == ENXIO ? std::string("nothing is reading this FIFO") : std::strerror(e));
      return false;
    }
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    int e = 0;
    const bool ok = produce([&](std::string_view piece) { return write_all(fd, piece, e); }) && e == 0;
    ::close(fd);
    if (!ok) error = path_in + ": write failed: " + std::strerror(e ? e : EIO);
    return ok;
  }
  const std::string dir = parent_of(path);
  std::string tmp = dir + "/." + name_of(path) + ".attnlab-tmp-" + std::to_string(::getpid()) + "-XXXXXX";
  std::vector<char> tmpl(tmp.begin(), tmp.end());
  tmpl.push_back('\0');
  // mkstemp: O_CREAT | O_EXCL, so a planted file or link of that name is never followed
  const int fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
  if (fd < 0) {
    error = path_in + ": cannot write: " + std::strerror(errno);
    return false;
  }
  tmp = tmpl.data();
  const mode_t umask_now = ::umask(0);
  ::umask(umask_now);
  ::fchmod(fd, exists ? (st.st_mode & 07777) : (0666 & ~umask_now));
  int e = 0;
  bool ok = produce([&](std::string_view piece) { return write_all(fd, piece, e); }) && e == 0;
  if (!ok && e == 0) e = EIO;
  if (ok && ::fsync(fd) != 0) ok = false, e = errno;
  if (::close(fd) != 0 && ok) ok = false, e = errno;
  if (!ok) {
    ::unlink(tmp.c_str());
    error = path_in + ": write failed: " + std::strerror(e);
    return false;
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    e = errno;  // before unlink can change it
    ::unlink(tmp.c_str());
    error = path_in + ": cannot replace: " + std::strerror(e);
    return false;
  }
  // the rename itself is durable only once the folder is
  if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC); dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return true;
}

int remove_stale_temporaries(const std::string& dir) {
  static const std::regex ours(R"(^\..+\.attnlab-tmp-([0-9]+)-[A-Za-z0-9]{6}$)");
  static const std::regex older(R"(^.+\.tmp-([0-9]+)$)");
  DIR* d = ::opendir(dir.c_str());
  if (!d) return 0;
  int removed = 0;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    std::smatch m;
    if (!std::regex_match(name, m, ours) && !std::regex_match(name, m, older)) continue;
    const long pid = std::strtol(m[1].str().c_str(), nullptr, 10);
    if (pid <= 0 || pid == ::getpid() || (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM)) continue;
    const std::string path = dir + "/" + name;
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::unlink(path.c_str()) == 0) ++removed;
  }
  ::closedir(d);
  return removed;
}

}  // namespace attnlab
