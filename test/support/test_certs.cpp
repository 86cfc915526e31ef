#include "support/test_certs.hpp"

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "support/agent_process.hpp"

namespace sandbox::test {

TestCerts::TestCerts() {
  ProcessResult r = run_process({"/bin/bash", SANDBOX_MAKE_TEST_CERTS, dir_.path().string()});
  if (r.exit_code != 0) {
    throw std::runtime_error("make_test_certs.sh failed (" + std::to_string(r.exit_code) +
                             "): " + r.stderr_text);
  }
}

std::string TestCerts::pem(std::string_view name) const {
  std::ifstream in(file(name), std::ios::binary);
  if (!in) throw std::runtime_error("no generated file " + std::string(name));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

RotatingFiles::RotatingFiles(const TestCerts& certs, std::filesystem::path directory,
                             const std::vector<std::pair<std::string, std::string>>& files)
    : certs_(certs), directory_(std::move(directory)) {
  rotate(files);
}

void RotatingFiles::rotate(const std::vector<std::pair<std::string, std::string>>& files) {
  namespace fs = std::filesystem;
  const std::string version = "v" + std::to_string(++version_);
  fs::create_directory(directory_ / version);
  for (const auto& [name, generated] : files) {
    fs::copy_file(certs_.file(generated), directory_ / version / name);
  }
  fs::create_directory_symlink(version, directory_ / "live.next");
  fs::rename(directory_ / "live.next", directory_ / "live");  // replaces the old link at once
}

}  // namespace sandbox::test
