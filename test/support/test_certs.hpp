// Certificates made at test time by make_test_certs.sh (no private key is committed).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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

/// Certificate files as a rotation must replace them (docs/security.md, "Rotating"): a
/// directory reached through the symlink `live`, switched to the next version in one rename,
/// so a reader never sees a new certificate with an old key.
class RotatingFiles {
 public:
  /// `files`: the name under `live` of each file and the generated certificate it starts as,
  /// e.g. {{"cert.pem", "server.pem"}, {"key.pem", "server.key"}}.
  RotatingFiles(const TestCerts& certs, std::filesystem::path directory,
                const std::vector<std::pair<std::string, std::string>>& files);
  /// The stable path of one file, e.g. path("cert.pem").
  std::string path(const std::string& name) const { return (directory_ / "live" / name).string(); }
  /// Switches every file to the generated certificate named for it, in one rename.
  void rotate(const std::vector<std::pair<std::string, std::string>>& files);

 private:
  const TestCerts& certs_;
  std::filesystem::path directory_;
  int version_ = 0;
};

}  // namespace sandbox::test
