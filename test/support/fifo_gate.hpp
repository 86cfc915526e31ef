// Holding a remote command at a known point without sleeping: it blocks reading a fifo until
// the test opens the other end.
#pragma once

#include <filesystem>
#include <string>

namespace sandbox::test {

/// A named pipe `dir/name` that a command reads (`cat gate`, `read line < gate`): the
/// command waits there until open() writes "go\n". Removed with its directory.
class FifoGate {
 public:
  /// Creates the fifo. @throws std::system_error when it cannot.
  explicit FifoGate(const std::filesystem::path& dir, std::string name = "gate");

  /// The fifo's name relative to `dir`, for command lines run there.
  [[nodiscard]] const std::string& name() const noexcept { return name_; }

  /// Writes "go\n" to the fifo. Blocks until the command has opened it for reading: call it
  /// once the command is known to be on its way there (it printed what precedes the read).
  void open() const;

 private:
  std::filesystem::path path_;
  std::string name_;
};

/// The number of lines in `path`, 0 when it does not exist: how tests count a command's
/// runs (`echo run >> runs`).
int count_lines(const std::filesystem::path& path);

}  // namespace sandbox::test
