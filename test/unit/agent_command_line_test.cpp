#include "agent/command_line.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <vector>

#include "support/temp_dir.hpp"

namespace sandbox::agent {
namespace {

using ::testing::HasSubstr;

CommandLine parse(std::vector<std::string_view> args) { return parse_command_line(args); }

std::string error_of(std::vector<std::string_view> args) {
  try {
    parse(args);
  } catch (const CommandLineError& error) {
    return error.what();
  }
  return "(no error)";
}

TEST(AgentCommandLineTest, ParsesEveryFlag) {
  CommandLine line = parse({"--listen", "127.0.0.1:0", "--allow-unauthenticated", "--workspace",
                            "/tmp", "--sandbox-id=box-1"});
  EXPECT_EQ(line.action, CommandLine::Action::run);
  EXPECT_EQ(line.options.listen, "127.0.0.1:0");
  EXPECT_TRUE(line.options.allow_unauthenticated);
  EXPECT_EQ(line.options.workspace, "/tmp");
  EXPECT_EQ(line.options.sandbox_id, "box-1");
}

TEST(AgentCommandLineTest, ReattachFlagsTakeDurationsAndByteCounts) {
  using namespace std::chrono_literals;
  CommandLine defaults = parse({"--listen", "x:1", "--allow-unauthenticated"});
  EXPECT_EQ(defaults.options.reattach_grace, 30s);
  EXPECT_EQ(defaults.options.resume_retention, 60s);
  EXPECT_EQ(defaults.options.resume_buffer_bytes, 8u << 20);
  CommandLine line = parse({"--listen", "x:1", "--allow-unauthenticated", "--reattach-grace",
                            "500ms", "--resume-retention=2m", "--resume-buffer", "64K"});
  EXPECT_EQ(line.options.reattach_grace, 500ms);
  EXPECT_EQ(line.options.resume_retention, 2min);
  EXPECT_EQ(line.options.resume_buffer_bytes, 64u << 10);
  EXPECT_EQ(parse({"--listen", "x:1", "--allow-unauthenticated", "--reattach-grace", "0"})
                .options.reattach_grace,
            0ms);
  EXPECT_THAT(error_of({"--listen", "x:1", "--allow-unauthenticated", "--reattach-grace", "soon"}),
              HasSubstr("--reattach-grace: expected a duration"));
  EXPECT_THAT(error_of({"--listen", "x:1", "--allow-unauthenticated", "--resume-buffer", "0"}),
              HasSubstr("--resume-buffer: expected a positive byte count"));
}

TEST(AgentCommandLineTest, LimitFlagsDefaultToTheDocumentedValues) {
  using namespace std::chrono_literals;
  const AgentOptions options = parse({"--listen", "x:1", "--allow-unauthenticated"}).options;
  EXPECT_EQ(options.max_output_bytes, std::uint64_t{8} << 30);
  EXPECT_EQ(options.max_concurrent, 64u);
  EXPECT_EQ(options.max_timeout, 1h);
}

TEST(AgentCommandLineTest, LimitFlagsTakeByteCountsCountsAndDurations) {
  using namespace std::chrono_literals;
  const AgentOptions options =
      parse({"--listen", "x:1", "--allow-unauthenticated", "--max-output-bytes", "1M",
             "--max-concurrent=3", "--max-timeout", "200ms"})
          .options;
  EXPECT_EQ(options.max_output_bytes, 1u << 20);
  EXPECT_EQ(options.max_concurrent, 3u);
  EXPECT_EQ(options.max_timeout, 200ms);
}

TEST(AgentCommandLineTest, LimitFlagsRefuseZeroAndGarbageNamingTheFlag) {
  auto error_with = [](std::string_view flag, std::string_view value) {
    return error_of({"--listen", "x:1", "--allow-unauthenticated", flag, value});
  };
  EXPECT_THAT(error_with("--max-output-bytes", "0"),
              HasSubstr("--max-output-bytes: expected a positive byte count"));
  EXPECT_THAT(error_with("--max-output-bytes", "lots"),
              HasSubstr("--max-output-bytes: expected a positive byte count"));
  EXPECT_THAT(error_with("--max-concurrent", "0"),
              HasSubstr("--max-concurrent: expected a positive whole number, got '0'"));
  EXPECT_THAT(error_with("--max-concurrent", "-1"),
              HasSubstr("--max-concurrent: expected a positive whole number"));
  EXPECT_THAT(error_with("--max-concurrent", "8x"),
              HasSubstr("--max-concurrent: expected a positive whole number"));
  EXPECT_THAT(error_with("--max-timeout", "0"),
              HasSubstr("--max-timeout: expected a positive duration"));
  EXPECT_THAT(error_with("--max-timeout", "forever"),
              HasSubstr("--max-timeout: expected a positive duration"));
}

TEST(AgentCommandLineTest, HelpDescribesTheLimitFlags) {
  const std::string text = usage();
  EXPECT_THAT(text, HasSubstr("--max-output-bytes BYTES"));
  EXPECT_THAT(text, HasSubstr("--max-concurrent N"));
  EXPECT_THAT(text, HasSubstr("--max-timeout DURATION"));
}

TEST(AgentCommandLineTest, SandboxFlagsChooseTheBackendAndTheMaximumProfile) {
  CommandLine defaults = parse({"--listen", "x:1", "--allow-unauthenticated"});
  EXPECT_EQ(defaults.options.sandbox, SandboxKind::bubblewrap);
  EXPECT_EQ(defaults.options.max_profile, Profile::standard);
  EXPECT_EQ(defaults.options.bwrap_path, "bwrap");
  CommandLine line = parse({"--listen", "x:1", "--allow-unauthenticated", "--sandbox", "none",
                            "--max-profile=strict", "--bwrap", "/opt/bwrap"});
  EXPECT_EQ(line.options.sandbox, SandboxKind::none);
  EXPECT_EQ(line.options.max_profile, Profile::strict);
  EXPECT_EQ(line.options.bwrap_path, "/opt/bwrap");
  EXPECT_THAT(error_of({"--listen", "x:1", "--allow-unauthenticated", "--sandbox", "docker"}),
              HasSubstr("--sandbox: expected bubblewrap or none, got 'docker'"));
  EXPECT_THAT(error_of({"--listen", "x:1", "--allow-unauthenticated", "--max-profile", "root"}),
              HasSubstr("--max-profile: expected strict or standard, got 'root'"));
}

TEST(AgentCommandLineTest, ReadsAndTrimsTheTokenFile) {
  sandbox::test::TempDir dir;
  const std::string path = (dir.path() / "token").string();
  std::ofstream(path) << "  abc.DEF-123\n";
  CommandLine line = parse({"--listen", "unix:/x.sock", "--token-file", path});
  EXPECT_EQ(line.options.token, "abc.DEF-123");
}

TEST(AgentCommandLineTest, RefusesToRunWithoutAuthentication) {
  EXPECT_THAT(error_of({"--listen", "127.0.0.1:0"}), HasSubstr("--allow-unauthenticated"));
}

TEST(AgentCommandLineTest, ReadsTheTlsFlags) {
  CommandLine line = parse({"--listen", "x:1", "--tls-cert", "/c.pem", "--tls-key", "/k.pem",
                            "--client-ca", "/ca.pem", "--tls-reload-interval", "5s"});
  EXPECT_EQ(line.options.tls_cert_file, "/c.pem");
  EXPECT_EQ(line.options.tls_key_file, "/k.pem");
  EXPECT_EQ(line.options.client_ca_file, "/ca.pem");
  EXPECT_EQ(line.options.tls_reload_interval, std::chrono::seconds(5));
  EXPECT_FALSE(line.options.allow_unauthenticated) << "client certificates authenticate";
}

TEST(AgentCommandLineTest, RefusesTlsFlagsThatDoNotGoTogether) {
  EXPECT_THAT(error_of({"--listen", "x:1", "--allow-unauthenticated", "--tls-cert", "/c.pem"}),
              HasSubstr("--tls-cert: requires --tls-key"));
  EXPECT_THAT(error_of({"--listen", "x:1", "--allow-unauthenticated", "--tls-key", "/k.pem"}),
              HasSubstr("--tls-key: requires --tls-cert"));
  EXPECT_THAT(error_of({"--listen", "x:1", "--client-ca", "/ca.pem"}),
              HasSubstr("--client-ca: requires --tls-cert and --tls-key"));
  EXPECT_THAT(error_of({"--listen", "x:1", "--allow-unauthenticated", "--tls-cert", "/c.pem",
                        "--tls-key", "/k.pem", "--tls-reload-interval", "500ms"}),
              HasSubstr("--tls-reload-interval: must be at least 1s"));
  EXPECT_THAT(error_of({"--listen", "x:1", "--allow-unauthenticated", "--tls-cert", ""}),
              HasSubstr("--tls-cert: must not be empty"));
}

TEST(AgentCommandLineTest, TlsWithoutClientCertificatesOrTokenIsNoAuthentication) {
  EXPECT_THAT(error_of({"--listen", "x:1", "--tls-cert", "/c.pem", "--tls-key", "/k.pem"}),
              HasSubstr("--token-file or --client-ca: required unless --allow-unauthenticated"));
}

TEST(AgentCommandLineTest, ErrorsNameTheFlag) {
  EXPECT_THAT(error_of({"--allow-unauthenticated"}), HasSubstr("--listen: required"));
  EXPECT_THAT(error_of({"--listen"}), HasSubstr("--listen: needs a value"));
  EXPECT_THAT(error_of({"--frobnicate"}), HasSubstr("--frobnicate: unknown flag"));
  EXPECT_THAT(error_of({"--listen", "x:1", "--token-file", "/nonexistent/token"}),
              HasSubstr("--token-file: cannot read"));
  EXPECT_THAT(error_of({"--allow-unauthenticated=yes"}),
              HasSubstr("--allow-unauthenticated: takes no value"));
}

TEST(AgentCommandLineTest, EmptyTokenFileIsAnError) {
  sandbox::test::TempDir dir;
  const std::string path = (dir.path() / "token").string();
  std::ofstream(path) << "\n";
  EXPECT_THAT(error_of({"--listen", "x:1", "--token-file", path}),
              HasSubstr("--token-file: '" + path + "' is empty"));
}

TEST(AgentCommandLineTest, HelpAndVersionNeedNothingElse) {
  EXPECT_EQ(parse({"--help"}).action, CommandLine::Action::help);
  EXPECT_EQ(parse({"--version"}).action, CommandLine::Action::version);
}

TEST(AgentCommandLineTest, SecretsDirNamesAnExistingDirectory) {
  sandbox::test::TempDir dir;
  EXPECT_TRUE(parse({"--listen", "x:1", "--allow-unauthenticated"}).options.secrets_dir.empty());
  EXPECT_EQ(
      parse({"--listen", "x:1", "--allow-unauthenticated", "--secrets-dir", dir.path().string()})
          .options.secrets_dir,
      dir.path());
  const std::string inline_flag = "--secrets-dir=" + dir.path().string();
  EXPECT_EQ(parse({"--listen", "x:1", "--allow-unauthenticated", inline_flag}).options.secrets_dir,
            dir.path());
  EXPECT_EQ(error_of({"--listen", "x:1", "--allow-unauthenticated", "--secrets-dir"}),
            "--secrets-dir: needs a value");
  EXPECT_EQ(error_of({"--listen", "x:1", "--allow-unauthenticated", "--secrets-dir="}),
            "--secrets-dir: must not be empty");
  const std::string missing = (dir.path() / "missing").string();
  EXPECT_EQ(error_of({"--listen", "x:1", "--allow-unauthenticated", "--secrets-dir", missing}),
            "--secrets-dir: '" + missing + "' is not an existing directory");
  std::ofstream(dir.path() / "file") << "x";
  EXPECT_THAT(error_of({"--listen", "x:1", "--allow-unauthenticated", "--secrets-dir",
                        (dir.path() / "file").string()}),
              HasSubstr("--secrets-dir: "));
  EXPECT_THAT(usage(), HasSubstr("--secrets-dir DIR"));
}

}  // namespace
}  // namespace sandbox::agent
