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

void replace_file(const std::filesystem::path& source, const std::filesystem::path& target) {
  const std::filesystem::path staging = target.string() + ".new";
  std::filesystem::copy_file(source, staging, std::filesystem::copy_options::overwrite_existing);
  std::filesystem::rename(staging, target);
}

}  // namespace sandbox::test
