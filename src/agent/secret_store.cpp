#include "agent/secret_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>

namespace sandbox::agent {
namespace {

// open(2)/openat(2), retried on EINTR.
int open_at(int dir, const char* name, int flags) {
  int fd;
  do {
    fd = ::openat(dir, name, flags | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  return fd;
}

SecretStore::Lookup open_failure(int error) {
  switch (error) {
    case ENOENT:
      return SecretStore::Lookup::not_found;
    case ELOOP:    // a symlink (O_NOFOLLOW)
    case ENOTDIR:  // a directory component is a symlink or a file
    case EISDIR:
      return SecretStore::Lookup::not_a_file;
    default:
      return SecretStore::Lookup::unreadable;
  }
}

}  // namespace

bool is_valid_secret_name(std::string_view name) noexcept {
  if (name.empty() || name.front() == '/') return false;
  if (name.find('\0') != std::string_view::npos) return false;
  std::size_t start = 0;
  for (;;) {
    const std::size_t slash = name.find('/', start);
    const std::string_view component = name.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (component.empty() || component == "." || component == "..") return false;
    if (slash == std::string_view::npos) return true;
    start = slash + 1;
  }
}

SecretStore::SecretStore(const std::filesystem::path& directory)
    : directory_(directory),
      fd_(directory.empty() ? -1 : open_at(AT_FDCWD, directory.c_str(), O_RDONLY | O_DIRECTORY)) {
  if (!fd_) {
    throw std::runtime_error("secrets_dir: '" + directory.string() +
                             "' is not an existing directory");
  }
}

SecretStore::~SecretStore() = default;

SecretStore::Lookup SecretStore::lookup(std::string_view name, std::string& value) const {
  if (!is_valid_secret_name(name)) return Lookup::bad_name;
  // Walk down one component at a time; O_NOFOLLOW refuses a symlink at every step, so the
  // walk cannot leave the directory (".." components are refused by the name check).
  UniqueFd dir;
  int at = fd_.get();
  std::size_t start = 0;
  for (;;) {
    const std::size_t slash = name.find('/', start);
    const std::string component(name.substr(
        start, slash == std::string_view::npos ? std::string_view::npos : slash - start));
    if (slash == std::string_view::npos) {
      // O_NONBLOCK: opening a fifo must not block the agent; fstat refuses it below.
      UniqueFd file(open_at(at, component.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK));
      if (!file) return open_failure(errno);
      struct stat info {};
      if (::fstat(file.get(), &info) != 0) return Lookup::unreadable;
      if (!S_ISREG(info.st_mode)) return Lookup::not_a_file;
      if (info.st_size > static_cast<off_t>(kMaxSecretBytes)) return Lookup::too_big;
      // Read one byte past the limit: the file may have grown since fstat.
      value.assign(kMaxSecretBytes + 1, '\0');
      std::size_t size = 0;
      while (size < value.size()) {
        const ssize_t n = ::read(file.get(), value.data() + size, value.size() - size);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Lookup::unreadable;
        if (n == 0) break;
        size += static_cast<std::size_t>(n);
      }
      if (size > kMaxSecretBytes) return Lookup::too_big;
      value.resize(size);
      if (value.ends_with('\n')) value.pop_back();
      if (value.find('\0') != std::string::npos) return Lookup::has_nul;
      return Lookup::found;
    }
    UniqueFd next(open_at(at, component.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
    if (!next) return open_failure(errno);
    dir = std::move(next);
    at = dir.get();
    start = slash + 1;
  }
}

std::string lookup_failure_message(std::string_view name, SecretStore::Lookup result) {
  const std::string quoted = "secret '" + std::string(name) + "'";
  switch (result) {
    case SecretStore::Lookup::found:
      return quoted + " found";
    case SecretStore::Lookup::bad_name:
      return quoted +
             ": a name is a relative path of non-empty components other than '.' and '..' "
             "(such as db/password)";
    case SecretStore::Lookup::not_found:
      return quoted + " not found in the agent's secret store";
    case SecretStore::Lookup::not_a_file:
      return quoted +
             " is not a regular file in the agent's secret store (symlinks are not followed)";
    case SecretStore::Lookup::too_big:
      return quoted + " is larger than " + std::to_string(kMaxSecretBytes) + " bytes";
    case SecretStore::Lookup::has_nul:
      return quoted + " contains a NUL byte (not allowed in an environment value)";
    case SecretStore::Lookup::unreadable:
      break;
  }
  return quoted + " cannot be read from the agent's secret store";
}

}  // namespace sandbox::agent
