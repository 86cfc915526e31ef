// The agent's secret store: a directory of files, one secret per file.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

#include "agent/process.hpp"

namespace sandbox::agent {

/// The largest secret file the store reads (before its trailing newline is stripped).
inline constexpr std::size_t kMaxSecretBytes = 64 * 1024;

/// Secrets by name: `secret://NAME` is the content of the file NAME below the store's
/// directory (docs/behavior.md §11).
///
/// Names are relative paths of non-empty components separated by '/', none of them "." or
/// "..", without NUL: `db/password`. The file is opened without ever leaving the directory:
/// from a descriptor of the directory opened at construction, one component at a time with
/// openat(O_NOFOLLOW), so a symlink anywhere below the directory (pointing inside or out) is
/// refused, and renaming or replacing the directory later does not redirect lookups. It must
/// be a regular file of at most kMaxSecretBytes; one trailing "\n" is stripped (`echo x > f`
/// gives "x"); a value with a NUL byte cannot be an environment value and is refused.
///
/// Thread-safety: lookup() may be called from any thread, concurrently.
class SecretStore {
 public:
  /// Why a lookup failed; lookup_failure_message() says it for a client.
  enum class Lookup { found, bad_name, not_found, not_a_file, too_big, has_nul, unreadable };

  /// Opens `directory`.
  /// @throws std::runtime_error "secrets_dir: '<dir>' is not an existing directory".
  explicit SecretStore(const std::filesystem::path& directory);
  ~SecretStore();
  SecretStore(const SecretStore&) = delete;
  SecretStore& operator=(const SecretStore&) = delete;

  /// The directory as given at construction.
  [[nodiscard]] const std::filesystem::path& directory() const noexcept { return directory_; }

  /// Reads the secret `name` into `value` (unspecified unless found). Blocking file I/O on
  /// a small file; never throws but std::bad_alloc.
  Lookup lookup(std::string_view name, std::string& value) const;

 private:
  std::filesystem::path directory_;
  UniqueFd fd_;  // O_DIRECTORY | O_CLOEXEC
};

/// True when `name` is a well-formed secret name (see SecretStore).
bool is_valid_secret_name(std::string_view name) noexcept;

/// "secret 'db/password' not found in the agent's secret store": what went wrong with the
/// reference `name`, for an error message. Never contains the value.
std::string lookup_failure_message(std::string_view name, SecretStore::Lookup result);

}  // namespace sandbox::agent
