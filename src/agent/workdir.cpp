#include "agent/workdir.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <iterator>
#include <string>
#include <system_error>

namespace sandbox::agent {
namespace {

namespace fs = std::filesystem;

grpc::Status invalid(std::string message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::move(message));
}

// True when `path` is `root` or below it; both absolute and normalised.
bool is_within(const fs::path& path, const fs::path& root) {
  auto [root_end, path_it] = std::mismatch(root.begin(), root.end(), path.begin(), path.end());
  // A trailing empty component ("/ws/") matches anything below it.
  return root_end == root.end() || (std::next(root_end) == root.end() && root_end->empty());
}

}  // namespace

grpc::Status resolve_workdir(std::string_view workdir, const fs::path& workspace,
                             ResolvedWorkdir& out) {
  if (workdir.find('\0') != std::string_view::npos) {
    return invalid("workdir: contains a NUL byte");
  }
  if (workdir.size() > kMaxWorkdirBytes) {
    return invalid("workdir: " + std::to_string(workdir.size()) + " bytes, at most " +
                   std::to_string(kMaxWorkdirBytes));
  }
  // The lexical rule first, for the clearest message; the kernel's walk below is the proof.
  const fs::path lexical = (workspace / fs::path(workdir)).lexically_normal();
  if (!is_within(lexical, workspace)) return invalid("workdir: must be inside the workspace");
  fs::path relative = lexical.lexically_relative(workspace);
  if (relative.empty()) relative = ".";

  const UniqueFd root(::open(workspace.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                        std::string("workspace: cannot be opened: ") + std::strerror(errno));
  }
  open_how how{};
  how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  const int fd =
      static_cast<int>(::syscall(SYS_openat2, root.get(), relative.c_str(), &how, sizeof how));
  if (fd < 0) {
    switch (errno) {
      case EXDEV:
        return invalid("workdir: resolves outside the workspace (through a symlink)");
      case ENOENT:
        return invalid("workdir: does not exist");
      case ENOTDIR:
        return invalid("workdir: is not a directory");
      case ELOOP:
        return invalid("workdir: too many levels of symbolic links");
      case ENAMETOOLONG:
        return invalid("workdir: a name in it is too long");
      case EACCES:
        return invalid("workdir: permission denied");
      case ENOSYS:
        // Fail closed: without the kernel's confined walk the check could be raced.
        return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                            "workdir: this kernel cannot confine path resolution (openat2 with "
                            "RESOLVE_BENEATH needs Linux 5.6 or later)");
      default:
        return invalid(std::string("workdir: cannot be opened: ") + std::strerror(errno));
    }
  }
  out.fd = UniqueFd(fd);
  std::error_code ec;
  out.path = fs::read_symlink("/proc/self/fd/" + std::to_string(fd), ec);
  if (ec) out.path = lexical;
  return grpc::Status::OK;
}

}  // namespace sandbox::agent
