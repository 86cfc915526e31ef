#include <gtest/gtest.h>

#include <regex>
#include <set>

#include "client/detail/request.hpp"
#include "common/utf8.hpp"
#include "common/uuid.hpp"
#include "sandbox/error.hpp"

namespace sandbox::detail {
namespace {

using namespace std::chrono_literals;

TEST(ClientRequestTest, EmptyArgvIsInvalidAndNamesTheField) {
  auto result = validate(Command{});
  EXPECT_EQ(result.error, errc::invalid_argument);
  EXPECT_NE(result.message.find("argv"), std::string::npos) << result.message;
}

TEST(ClientRequestTest, SizeLimitsAcceptTheLimitAndNameTheFieldPastIt) {
  v1::ExecRequest request;
  for (int i = 0; i < 4096; ++i) request.add_command("a");
  EXPECT_TRUE(validate_size(request)) << validate_size(request).message;
  request.add_command("b");
  auto argv = validate_size(request);
  EXPECT_EQ(argv.error, errc::invalid_argument);
  EXPECT_EQ(argv.message, "command: 4097 arguments, at most 4096");

  v1::ExecRequest env;
  env.add_command("env");
  (*env.mutable_env())["BIG"] = std::string((1u << 20) - 3, 'v');
  EXPECT_TRUE(validate_size(env)) << validate_size(env).message;
  (*env.mutable_env())["BIG"].push_back('v');
  auto env_size = validate_size(env);
  EXPECT_EQ(env_size.message, "env: 1048577 bytes in total (names and values), at most 1048576");

  v1::ExecRequest input;
  input.add_command("cat");
  input.set_stdin(std::string(4u << 20, 's'));
  EXPECT_TRUE(validate_size(input));
  input.mutable_stdin()->push_back('s');
  EXPECT_EQ(validate_size(input).message, "stdin: 4194305 bytes, at most 4194304");
}

TEST(ClientRequestTest, EmptyProgramNameIsInvalid) {
  EXPECT_EQ(validate(Command{""}).error, errc::invalid_argument);
}

TEST(ClientRequestTest, NulInArgvIsInvalidAndNamesTheIndex) {
  auto result = validate(Command{"echo", std::string("a\0b", 3)});
  EXPECT_EQ(result.error, errc::invalid_argument);
  EXPECT_NE(result.message.find("command[1]"), std::string::npos) << result.message;
}

TEST(ClientRequestTest, BadEnvNamesAreInvalidWithoutEchoingTheValue) {
  Command cmd{"env"};
  cmd.env["A=B"] = "hunter2";
  auto result = validate(cmd);
  EXPECT_EQ(result.error, errc::invalid_argument);
  EXPECT_EQ(result.message.find("hunter2"), std::string::npos);
  Command nul_value{"env"};
  nul_value.env["TOKEN"] = std::string("sec\0ret", 7);
  auto nul_result = validate(nul_value);
  EXPECT_EQ(nul_result.error, errc::invalid_argument);
  EXPECT_NE(nul_result.message.find("env[TOKEN]"), std::string::npos);
  EXPECT_EQ(nul_result.message.find("sec"), std::string::npos);
}

// Protobuf refuses to serialize a string field that is not UTF-8; the call would fail with
// a bare status after the fact.
TEST(ClientRequestTest, TextThatIsNotUtf8IsInvalidAndNamesTheField) {
  const std::string latin1 = "caf\xe9";
  Command argv{"echo", latin1};
  EXPECT_EQ(validate(argv).message, "command[1]: must be UTF-8 (a protobuf string)");
  Command value{"env"};
  value.env["NAME"] = "s3cr3t" + latin1;
  auto result = validate(value);
  EXPECT_EQ(result.message, "env[NAME]: the value must be UTF-8") << "never the value";
  Command key{"env"};
  key.env[latin1] = "x";
  EXPECT_EQ(validate(key).message, "env: a variable name is not UTF-8 (a protobuf string)");
  Command workdir{"true"};
  workdir.workdir = latin1;
  EXPECT_EQ(validate(workdir).message, "workdir: must be UTF-8");
  Command fine{"echo", "caf\xc3\xa9 \xf0\x9f\x99\x82"};
  fine.env["GREETING"] = "\xe3\x81\x93\xe3\x82\x93";
  EXPECT_TRUE(validate(fine)) << validate(fine).message;
}

TEST(ClientRequestTest, Utf8CheckRefusesWhatProtobufRefuses) {
  EXPECT_TRUE(is_utf8(""));
  EXPECT_TRUE(is_utf8("\xf4\x8f\xbf\xbf"));   // U+10FFFF
  EXPECT_FALSE(is_utf8("\xf4\x90\x80\x80"));  // above it
  EXPECT_FALSE(is_utf8("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(is_utf8("\xe0\x80\xaf"));      // overlong, three bytes
  EXPECT_FALSE(is_utf8("\xed\xa0\x80"));      // a surrogate
  EXPECT_FALSE(is_utf8("\xe2\x82"));          // truncated
  EXPECT_FALSE(is_utf8("\x80"));              // a stray continuation byte
  EXPECT_FALSE(is_utf8("\xff"));
}

TEST(ClientRequestTest, ExecIdLongerThan36IsInvalid) {
  Command cmd{"true"};
  cmd.exec_id = std::string(37, 'a');
  EXPECT_EQ(validate(cmd).error, errc::invalid_argument);
  cmd.exec_id = std::string(36, 'a');
  EXPECT_FALSE(validate(cmd).error);
}

TEST(ClientRequestTest, RequestMergesCallOverRunnerDefaultsAndKeepsSecretsVerbatim) {
  RemoteRunnerConfig config;
  config.profile = "strict";
  config.image = "debian:12";
  config.env = {{"A", "runner"}, {"B", "runner"}};
  config.workdir = "src";
  config.max_output_bytes = 1000;
  Command cmd{"make", "-j2"};
  cmd.env = {{"B", "call"}, {"DB_PASSWORD", "secret://db/password"}};
  cmd.stdin_data = std::string("in\0put", 6);
  cmd.timeout = 1500ms;
  v1::ExecRequest request;
  build_request(config, cmd, OutputUse::collect, request);
  EXPECT_EQ(request.profile(), "strict");
  EXPECT_EQ(request.image(), "debian:12");
  ASSERT_EQ(request.command_size(), 2);
  EXPECT_EQ(request.command(1), "-j2");
  EXPECT_EQ(request.env().at("A"), "runner");
  EXPECT_EQ(request.env().at("B"), "call");
  EXPECT_EQ(request.env().at("DB_PASSWORD"), "secret://db/password");
  EXPECT_EQ(request.workdir(), "src");
  EXPECT_EQ(request.stdin(), std::string("in\0put", 6));
  EXPECT_EQ(request.timeout_ms(), 1500u);
  EXPECT_EQ(request.max_output_bytes(), 1000u);
  EXPECT_EQ(request.exec_id().size(), 36u);
}

TEST(ClientRequestTest, StreamsAskForNoCapUnlessTheCommandSetsOne) {
  RemoteRunnerConfig config;
  config.max_output_bytes = 1000;
  Command cmd{"cat"};
  v1::ExecRequest streamed;
  build_request(config, cmd, OutputUse::stream, streamed);
  EXPECT_EQ(streamed.max_output_bytes(), 0u);
  cmd.max_output_bytes = 10;
  v1::ExecRequest capped;
  build_request(config, cmd, OutputUse::stream, capped);
  EXPECT_EQ(capped.max_output_bytes(), 10u);
}

TEST(ClientRequestTest, CallDeadlineWinsThenTimeoutPlusGraceThenRunnerDefault) {
  RemoteRunnerConfig config;
  config.timeout_grace = 5s;
  Command cmd{"true"};
  EXPECT_FALSE(rpc_timeout(config, cmd));
  config.default_deadline = 60s;
  EXPECT_EQ(rpc_timeout(config, cmd), 60s);
  cmd.timeout = 10s;
  EXPECT_EQ(rpc_timeout(config, cmd), 15s);
  cmd.deadline = 2s;
  EXPECT_EQ(rpc_timeout(config, cmd), 2s);
}

TEST(ClientRequestTest, RandomUuidsAreVersion4AndDistinct) {
  const std::regex shape("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}");
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    auto id = sandbox::random_uuid();
    ASSERT_TRUE(std::regex_match(id, shape)) << id;
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 1000u);
}

}  // namespace
}  // namespace sandbox::detail
