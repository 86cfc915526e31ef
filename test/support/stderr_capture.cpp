#include "support/stderr_capture.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace sandbox::test {

StderrCapture::StderrCapture(std::filesystem::path file) : file_(std::move(file)) {
  std::fflush(stderr);
  saved_ = ::dup(STDERR_FILENO);
  const int fd = ::open(file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (saved_ < 0 || fd < 0 || ::dup2(fd, STDERR_FILENO) < 0) {
    throw std::runtime_error("cannot redirect stderr");
  }
  ::close(fd);
}

std::string StderrCapture::restore() {
  if (saved_ >= 0) {
    std::fflush(stderr);
    ::dup2(saved_, STDERR_FILENO);
    ::close(saved_);
    saved_ = -1;
  }
  std::ifstream in(file_, std::ios::binary);
  std::stringstream all;
  all << in.rdbuf();
  return all.str();
}

}  // namespace sandbox::test
