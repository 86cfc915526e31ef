#include "cli/fd_io.hpp"

#include <unistd.h>

#include <cerrno>

namespace sandbox::cli {

std::error_code write_all(int fd, std::string_view data) noexcept {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return {errno, std::system_category()};
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

std::error_code read_all(int fd, std::string& out) {
  char buffer[65536];
  for (;;) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      return {errno, std::system_category()};
    }
    if (n == 0) return {};
    out.append(buffer, static_cast<std::size_t>(n));
  }
}

}  // namespace sandbox::cli
