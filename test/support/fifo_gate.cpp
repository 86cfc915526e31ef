#include "support/fifo_gate.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <iterator>
#include <system_error>

namespace sandbox::test {

FifoGate::FifoGate(const std::filesystem::path& dir, std::string name)
    : path_(dir / name), name_(std::move(name)) {
  if (::mkfifo(path_.c_str(), 0600) != 0) {
    throw std::system_error(errno, std::generic_category(), "mkfifo " + path_.string());
  }
}

void FifoGate::open() const { std::ofstream(path_) << "go\n"; }

int count_lines(const std::filesystem::path& path) {
  std::ifstream file(path);
  return static_cast<int>(
      std::count(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>(), '\n'));
}

}  // namespace sandbox::test
