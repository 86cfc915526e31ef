#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <initializer_list>
#include <map>
#include <ostream>
#include <string_view>
#include <vector>

#include "cli/options.hpp"

namespace sandbox::cli {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::StartsWith;

ParsedArgs parse(std::initializer_list<std::string_view> args) {
  std::vector<std::string_view> list(args);
  return parse_args(list);
}

TEST(CliOptionsTest, CommandAfterDoubleDashIsTakenVerbatim) {
  auto parsed = parse({"--", "sh", "-c", "--timeout abc", "--"});
  ASSERT_EQ(parsed.action, Action::run) << parsed.error;
  EXPECT_EQ(parsed.options.argv, (std::vector<std::string>{"sh", "-c", "--timeout abc", "--"}));
  EXPECT_TRUE(parsed.options.address.empty());
}

TEST(CliOptionsTest, EveryValueFlagIsApplied) {
  auto parsed = parse({"--address",    "unix:/s",
                       "--token-file", "/t",
                       "--ca",         "/ca",
                       "--cert=/c",    "--key",
                       "/k",           "--server-name",
                       "agent.test",   "--allow-insecure",
                       "--profile",    "strict",
                       "--image",      "img:1",
                       "--workdir",    "sub",
                       "--sandbox-id", "sb-1",
                       "--env",        "A=1",
                       "--env",        "B=x=y",
                       "--stdin",      "--timeout",
                       "500ms",        "--max-output",
                       "64K",          "--",
                       "true"});
  ASSERT_EQ(parsed.action, Action::run) << parsed.error;
  const Options& o = parsed.options;
  EXPECT_EQ(o.address, "unix:/s");
  EXPECT_EQ(o.token_file, "/t");
  EXPECT_EQ(o.ca_file, "/ca");
  EXPECT_EQ(o.cert_file, "/c");
  EXPECT_EQ(o.key_file, "/k");
  EXPECT_EQ(o.server_name, "agent.test");
  EXPECT_TRUE(o.allow_insecure);
  EXPECT_EQ(o.profile, "strict");
  EXPECT_EQ(o.image, "img:1");
  EXPECT_EQ(o.workdir, "sub");
  EXPECT_EQ(o.sandbox_id, "sb-1");
  EXPECT_EQ(o.env, (std::map<std::string, std::string>{{"A", "1"}, {"B", "x=y"}}));
  EXPECT_TRUE(o.forward_stdin);
  EXPECT_EQ(o.timeout, 500ms);
  EXPECT_EQ(o.max_output_bytes, 65536u);
  EXPECT_TRUE(o.uses_tls());
}

TEST(CliOptionsTest, ProtocolSelectsTheAgentsGeneration) {
  EXPECT_EQ(parse({"--address", "x:1", "--", "true"}).options.protocol, AgentProtocol::v1);
  EXPECT_EQ(parse({"--address", "x:1", "--protocol", "legacy", "--", "true"}).options.protocol,
            AgentProtocol::legacy);
  EXPECT_EQ(parse({"--address", "x:1", "--protocol=v1", "--", "true"}).options.protocol,
            AgentProtocol::v1);
}

TEST(CliOptionsTest, SecretReferenceIsKeptVerbatim) {
  auto parsed = parse({"--env", "API_KEY=secret://prod/api", "--", "env"});
  ASSERT_EQ(parsed.action, Action::run) << parsed.error;
  EXPECT_EQ(parsed.options.env.at("API_KEY"), "secret://prod/api");
}

TEST(CliOptionsTest, HelpAndVersionWinOverBadFlags) {
  EXPECT_EQ(parse({"--timeout", "abc", "--help"}).action, Action::help);
  EXPECT_EQ(parse({"-h"}).action, Action::help);
  EXPECT_EQ(parse({"--version", "--bogus"}).action, Action::version);
}

TEST(CliOptionsTest, HelpAfterDoubleDashBelongsToTheCommand) {
  auto parsed = parse({"--", "ls", "--help"});
  ASSERT_EQ(parsed.action, Action::run) << parsed.error;
  EXPECT_EQ(parsed.options.argv.back(), "--help");
}

struct BadArgs {
  std::string_view name;
  std::vector<std::string_view> args;
  std::string_view error_start;
};

// Test names and CTest's listing show the case's name, not a byte dump.
void PrintTo(const BadArgs& bad, std::ostream* os) { *os << bad.name; }

class CliOptionsRejectTest : public ::testing::TestWithParam<BadArgs> {};

TEST_P(CliOptionsRejectTest, NamesTheFlagAndTheRule) {
  auto parsed = parse_args(GetParam().args);
  EXPECT_EQ(parsed.action, Action::error);
  EXPECT_THAT(parsed.error, StartsWith(std::string(GetParam().error_start)));
  EXPECT_EQ(parsed.error.find('\n'), std::string::npos) << "one line";
}

INSTANTIATE_TEST_SUITE_P(
    BadCommandLines, CliOptionsRejectTest,
    ::testing::Values(
        BadArgs{"NotADuration",
                {"--timeout", "abc", "--", "true"},
                "--timeout: expected a positive duration"},
        BadArgs{"ZeroDuration",
                {"--timeout", "0s", "--", "true"},
                "--timeout: expected a positive duration"},
        BadArgs{"NegativeDuration",
                {"--timeout=-5", "--", "true"},
                "--timeout: expected a positive duration"},
        BadArgs{"BadByteCount",
                {"--max-output", "10X", "--", "true"},
                "--max-output: expected a positive"},
        BadArgs{"UnknownFlag", {"--bogus", "--", "true"}, "--bogus: unknown flag"},
        BadArgs{"UnknownProtocol",
                {"--address", "x:1", "--protocol", "v0", "--", "true"},
                "--protocol: expected v1 or legacy"},
        BadArgs{"LegacyWithoutAddress",
                {"--protocol", "legacy", "--", "true"},
                "--protocol: legacy requires --address"},
        BadArgs{"UnknownFlagWithValue", {"--bogus=1", "--", "true"}, "--bogus: unknown flag"},
        BadArgs{"ValueForSwitch", {"--stdin=yes", "--", "true"}, "--stdin: takes no value"},
        BadArgs{"MissingValueAtEnd", {"--timeout"}, "--timeout: needs a value"},
        BadArgs{"MissingValueBeforeDoubleDash",
                {"--timeout", "--", "true"},
                "--timeout: needs a value"},
        BadArgs{"EmptyAddress", {"--address", "", "--", "true"}, "--address: must not be empty"},
        BadArgs{"EnvWithoutKey", {"--env", "=x", "--", "true"}, "--env: expected KEY=VALUE"},
        BadArgs{
            "EnvWithoutEquals", {"--env", "NOEQUALS", "--", "true"}, "--env: expected KEY=VALUE"},
        BadArgs{"RepeatedProfile",
                {"--profile", "a", "--profile", "b", "--", "true"},
                "--profile: given more than once"},
        BadArgs{
            "RepeatedSwitch", {"--stdin", "--stdin", "--", "cat"}, "--stdin: given more than once"},
        BadArgs{"PositionalBeforeDoubleDash", {"echo", "hi"}, "unexpected argument \"echo\""},
        BadArgs{"NoDoubleDash", {"--stdin"}, "missing '--' before COMMAND"},
        BadArgs{"NoArguments", {}, "missing '--' before COMMAND"},
        BadArgs{"NoCommand", {"--"}, "missing COMMAND after '--'"},
        BadArgs{"EmptyProgram", {"--", ""}, "COMMAND: the program name must not be empty"},
        BadArgs{"TokenWithoutAddress",
                {"--token-file", "/t", "--", "true"},
                "--token-file: requires --address"},
        BadArgs{"CaWithoutAddress", {"--ca", "/ca", "--", "true"}, "--ca: requires --address"},
        BadArgs{"ServerNameWithoutAddress",
                {"--server-name", "agent.test", "--", "true"},
                "--server-name: requires --address"},
        BadArgs{"CertWithoutKey",
                {"--address", "a:1", "--cert", "/c", "--", "true"},
                "--cert: needs --key"},
        BadArgs{"KeyWithoutCert",
                {"--address", "a:1", "--key", "/k", "--", "true"},
                "--key: needs --cert"},
        BadArgs{"SingleDashFlag", {"-x", "--", "true"}, "-x: unknown flag"},
        BadArgs{"ValueForJson", {"--json=1", "--", "true"}, "--json: takes no value"},
        BadArgs{"ValueForHelp", {"--help=1", "--", "true"}, "--help: takes no value"},
        BadArgs{"RepeatedJson", {"--json", "--json", "--", "true"}, "--json: given more than once"},
        BadArgs{"EmptyImage", {"--image", "", "--", "true"}, "--image: must not be empty"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(CliOptionsTest, UnknownFlagIsNamedWithoutItsControlCharacters) {
  auto parsed = parse({"--x\x1b[31m", "--", "true"});
  ASSERT_EQ(parsed.action, Action::error);
  EXPECT_THAT(parsed.error, StartsWith("--x?[31m: unknown flag"));
}

TEST(CliOptionsTest, JsonIsASwitch) {
  auto parsed = parse({"--json", "--", "true"});
  ASSERT_EQ(parsed.action, Action::run) << parsed.error;
  EXPECT_TRUE(parsed.options.json);
  EXPECT_FALSE(parse({"--", "true", "--json"}).options.json) << "--json after -- is the command's";
}

TEST(CliOptionsTest, JsonIsKnownEvenWhenTheCommandLineFails) {
  // So that the error can be reported as a JSON line too.
  auto parsed = parse({"--timeout", "abc", "--json", "--", "true"});
  ASSERT_EQ(parsed.action, Action::error);
  EXPECT_TRUE(parsed.options.json);
}

/// Every `--flag` (or `-h`) token in `text`, as the next char ends it.
std::vector<std::string> flag_tokens(std::string_view text) {
  std::vector<std::string> tokens;
  auto is_name = [](char c) { return (c >= 'a' && c <= 'z') || c == '-'; };
  for (std::size_t i = 0; i < text.size(); ++i) {
    const bool starts = text[i] == '-' && (i == 0 || !is_name(text[i - 1]));
    if (!starts) continue;
    std::size_t end = i;
    while (end < text.size() && is_name(text[end])) ++end;
    if (end - i >= 2 && text.substr(i, end - i) != "--")
      tokens.emplace_back(text.substr(i, end - i));
    i = end;
  }
  return tokens;
}

TEST(CliOptionsTest, UsageListsEveryAcceptedFlag) {
  const auto documented = flag_tokens(usage_text());
  for (auto flag : accepted_flags()) {
    EXPECT_THAT(documented, ::testing::Contains(std::string(flag))) << flag << " is not in --help";
  }
}

TEST(CliOptionsTest, EveryListedFlagIsAcceptedAndEveryDocumentedFlagIsListed) {
  for (auto flag : accepted_flags()) {
    // A switch refuses `=x`, a value flag needs it: one of the two is not "unknown".
    auto unknown = [](const ParsedArgs& parsed) {
      return parsed.error.find("unknown flag") != std::string::npos;
    };
    const std::string with_value = std::string(flag) + "=x";
    EXPECT_FALSE(unknown(parse({flag, "--", "true"})) && unknown(parse({with_value, "--", "true"})))
        << flag << " is listed but refused";
  }
  for (const auto& token : flag_tokens(usage_text())) {
    EXPECT_THAT(accepted_flags(), ::testing::Contains(token)) << token << " is documented only";
  }
}

TEST(CliOptionsTest, UsageDefinesTheJsonSchema) {
  auto usage = std::string(usage_text());
  for (auto text :
       {R"({"event":"started","exec_id":S,"sandbox_id":S,"effective_profile":S})",
        R"({"event":"stdout","offset":N,"data":S})", R"({"event":"stderr","offset":N,"data":S})",
        R"({"event":"exit","exit_code":N,"signal":N,"timed_out":B,"stdout_truncated":B,)",
        R"("stderr_truncated":B,"stdout_total":N,"stderr_total":N,"duration_ms":N})",
        R"({"event":"error","code":S,"message":S})", "base64", "--json does not change it"}) {
    EXPECT_THAT(usage, HasSubstr(text));
  }
}

TEST(CliOptionsTest, ErrorQuotesControlCharactersAway) {
  auto parsed = parse({"--timeout", "1\n2", "--", "true"});
  ASSERT_EQ(parsed.action, Action::error);
  EXPECT_THAT(parsed.error, HasSubstr("\"1?2\""));
}

TEST(CliDurationTest, AcceptsEveryUnitAndBareSeconds) {
  EXPECT_EQ(parse_duration("500ms"), 500ms);
  EXPECT_EQ(parse_duration("30s"), 30s);
  EXPECT_EQ(parse_duration("5m"), 5min);
  EXPECT_EQ(parse_duration("1h"), 1h);
  EXPECT_EQ(parse_duration("7"), 7s);
}

TEST(CliDurationTest, RejectsMalformedZeroAndOverflow) {
  for (auto text : {"", "ms", "s", "abc", "1.5s", "-1s", "+1s", "0", "0ms", "1 s", "1d", "1sm",
                    "99999999999999999999ms", "9223372036854775807s"}) {
    EXPECT_EQ(parse_duration(text), std::nullopt) << text;
  }
}

TEST(CliByteCountTest, AcceptsBinarySuffixes) {
  EXPECT_EQ(parse_byte_count("1"), 1u);
  EXPECT_EQ(parse_byte_count("64K"), 64u << 10);
  EXPECT_EQ(parse_byte_count("16M"), 16u << 20);
  EXPECT_EQ(parse_byte_count("1G"), 1u << 30);
}

TEST(CliByteCountTest, RejectsMalformedZeroAndOverflow) {
  for (auto text :
       {"", "K", "0", "0K", "1k", "1KB", "-1", "18446744073709551616", "17179869184G"}) {
    EXPECT_EQ(parse_byte_count(text), std::nullopt) << text;
  }
}

TEST(CliOptionsTest, UsageDocumentsTheExitStatuses) {
  auto usage = std::string(usage_text());
  for (auto text : {"bare number is seconds", "124", "125", "128+N"}) {
    EXPECT_THAT(usage, HasSubstr(text));
  }
}

}  // namespace
}  // namespace sandbox::cli
