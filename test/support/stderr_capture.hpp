// fd 2 redirected to a file for a while: what the code under test logs there.
#pragma once

#include <filesystem>
#include <string>

namespace sandbox::test {

/// Redirects fd 2 to `file` from construction until restore() (or destruction). Use from
/// one thread; nothing else may redirect fd 2 meanwhile.
class StderrCapture {
 public:
  /// @throws std::runtime_error when fd 2 cannot be redirected.
  explicit StderrCapture(std::filesystem::path file);
  ~StderrCapture() { restore(); }
  StderrCapture(const StderrCapture&) = delete;
  StderrCapture& operator=(const StderrCapture&) = delete;

  /// Puts fd 2 back and returns what was written meanwhile.
  std::string restore();

 private:
  std::filesystem::path file_;
  int saved_ = -1;
};

}  // namespace sandbox::test
