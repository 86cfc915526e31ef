// A temporary directory for one test.
#pragma once

#include <filesystem>

namespace sandbox::test {

/// Creates a fresh directory (mkdtemp under $TMPDIR or /tmp, short enough for a unix socket
/// path inside it) and removes it recursively on destruction. Not copyable or movable.
class TempDir {
 public:
  /// @throws std::system_error when the directory cannot be created.
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace sandbox::test
