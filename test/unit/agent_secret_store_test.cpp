#include "agent/secret_store.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <stdexcept>

#include "support/temp_dir.hpp"

namespace sandbox::agent {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;
using Lookup = SecretStore::Lookup;

class AgentSecretStoreTest : public ::testing::Test {
 protected:
  AgentSecretStoreTest() {
    root_ = fs::canonical(dir_.path());
    fs::create_directories(root_ / "secrets" / "db");
    fs::create_directories(root_ / "outside");
    write("secrets/db/password", "s3cr3t-value\n");
    write("secrets/plain", "no-newline");
    write("outside/target", "outside-value\n");
  }

  void write(const std::string& relative, const std::string& content) {
    std::ofstream(root_ / relative, std::ios::binary) << content;
  }
  Lookup lookup(std::string_view name) {
    SecretStore store(root_ / "secrets");
    value_.clear();
    return store.lookup(name, value_);
  }

  sandbox::test::TempDir dir_;
  fs::path root_;
  std::string value_;
};

TEST_F(AgentSecretStoreTest, ReadsNestedNamesAndStripsOneTrailingNewline) {
  EXPECT_EQ(lookup("db/password"), Lookup::found);
  EXPECT_EQ(value_, "s3cr3t-value");
  EXPECT_EQ(lookup("plain"), Lookup::found);
  EXPECT_EQ(value_, "no-newline");
  write("secrets/two", "v\n\n");
  EXPECT_EQ(lookup("two"), Lookup::found);
  EXPECT_EQ(value_, "v\n") << "only one newline is stripped";
  write("secrets/crlf", "v\r\n");
  EXPECT_EQ(lookup("crlf"), Lookup::found);
  EXPECT_EQ(value_, "v\r");
}

TEST_F(AgentSecretStoreTest, RefusesMalformedNamesBeforeTouchingTheFilesystem) {
  for (std::string_view name : {"", "/etc/passwd", "../outside/target", "db/../plain", "a//b",
                                "db/", "./plain", "db/./password", ".."}) {
    EXPECT_FALSE(is_valid_secret_name(name)) << name;
    EXPECT_EQ(lookup(name), Lookup::bad_name) << name;
  }
  EXPECT_FALSE(is_valid_secret_name(std::string_view("a\0b", 3)));
  EXPECT_TRUE(is_valid_secret_name("db/password"));
  EXPECT_TRUE(is_valid_secret_name("..hidden/x.y"));
}

TEST_F(AgentSecretStoreTest, MissingFilesAreNotFound) {
  EXPECT_EQ(lookup("nope"), Lookup::not_found);
  EXPECT_EQ(lookup("nodir/password"), Lookup::not_found);
}

TEST_F(AgentSecretStoreTest, SymlinksAreNeverFollowed) {
  fs::create_symlink(root_ / "outside" / "target", root_ / "secrets" / "out-link");
  fs::create_directory_symlink(root_ / "outside", root_ / "secrets" / "out-dir");
  fs::create_symlink("plain", root_ / "secrets" / "in-link");
  EXPECT_EQ(lookup("out-link"), Lookup::not_a_file);
  EXPECT_EQ(lookup("out-dir/target"), Lookup::not_a_file);
  EXPECT_EQ(lookup("in-link"), Lookup::not_a_file) << "even a symlink within the store";
  EXPECT_THAT(value_, Not(HasSubstr("outside-value")));
}

TEST_F(AgentSecretStoreTest, DirectoriesAndFifosAreNotFiles) {
  EXPECT_EQ(lookup("db"), Lookup::not_a_file);
  ASSERT_EQ(::mkfifo((root_ / "secrets" / "fifo").c_str(), 0600), 0);
  EXPECT_EQ(lookup("fifo"), Lookup::not_a_file) << "and opening it did not block";
  EXPECT_EQ(lookup("plain/x"), Lookup::not_a_file);
}

TEST_F(AgentSecretStoreTest, SizeIsBoundedBeforeTheNewlineIsStripped) {
  write("secrets/max", std::string(kMaxSecretBytes, 'x'));
  EXPECT_EQ(lookup("max"), Lookup::found);
  EXPECT_EQ(value_.size(), kMaxSecretBytes);
  write("secrets/big", std::string(kMaxSecretBytes, 'x') + "\n");
  EXPECT_EQ(lookup("big"), Lookup::too_big);
}

TEST_F(AgentSecretStoreTest, NulBytesAreRefused) {
  write("secrets/nul", std::string("a\0b", 3));
  EXPECT_EQ(lookup("nul"), Lookup::has_nul);
}

TEST_F(AgentSecretStoreTest, MessagesNameTheReferenceAndTheRule) {
  EXPECT_EQ(lookup_failure_message("db/password", Lookup::not_found),
            "secret 'db/password' not found in the agent's secret store");
  EXPECT_THAT(lookup_failure_message("a//b", Lookup::bad_name), HasSubstr("relative path"));
  EXPECT_THAT(lookup_failure_message("big", Lookup::too_big), HasSubstr("65536 bytes"));
}

TEST_F(AgentSecretStoreTest, ConstructionNeedsAnExistingDirectory) {
  EXPECT_THROW(SecretStore(root_ / "missing"), std::runtime_error);
  EXPECT_THROW(SecretStore(root_ / "secrets" / "plain"), std::runtime_error);
  try {
    SecretStore store(root_ / "missing");
  } catch (const std::runtime_error& error) {
    EXPECT_THAT(error.what(), HasSubstr("secrets_dir:"));
    EXPECT_THAT(error.what(), HasSubstr("is not an existing directory"));
  }
}

TEST_F(AgentSecretStoreTest, LookupsStayInTheDirectoryOpenedAtConstruction) {
  SecretStore store(root_ / "secrets");
  fs::rename(root_ / "secrets", root_ / "moved");
  fs::create_directory(root_ / "secrets");
  write("secrets/plain", "impostor");
  std::string value;
  ASSERT_EQ(store.lookup("plain", value), Lookup::found);
  EXPECT_EQ(value, "no-newline");
}

}  // namespace
}  // namespace sandbox::agent
