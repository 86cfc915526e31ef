// Certificates made at test time by make_test_certs.sh (no private key is committed).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "support/temp_dir.hpp"

namespace sandbox::test {

/// A fresh set of the certificates make_test_certs.sh describes, in its own temporary
/// directory: `file("server.pem")`, `pem("ca.pem")`... Not copyable or movable.
class TestCerts {
 public:
  /// Runs the script (openssl). @throws std::runtime_error with its output when it fails.
  TestCerts();

  /// The path of one generated file, e.g. "client.key".
  std::filesystem::path file(std::string_view name) const { return dir_.path() / name; }
  /// The contents of one generated file.
  std::string pem(std::string_view name) const;
  const std::filesystem::path& directory() const noexcept { return dir_.path(); }

 private:
  TempDir dir_;
};

/// Replaces `target` by a copy of `source` atomically (a rename), as a rotation does.
void replace_file(const std::filesystem::path& source, const std::filesystem::path& target);

}  // namespace sandbox::test
