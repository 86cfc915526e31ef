#include "agent/redactor.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace sandbox::agent {
namespace {

// Feeds `chunks` one after the other, then finishes: everything the client would see.
std::string redact(Redactor& redactor, const std::vector<std::string>& chunks) {
  std::string out;
  for (const std::string& chunk : chunks) redactor.feed(chunk, out);
  redactor.finish(out);
  return out;
}

std::string redact(const std::vector<std::string>& secrets,
                   const std::vector<std::string>& chunks) {
  Redactor redactor(secrets);
  return redact(redactor, chunks);
}

TEST(AgentRedactorTest, WholeSecretInOneChunk) {
  EXPECT_EQ(redact({"s3cr3t-value"}, {"pw=s3cr3t-value\n"}), "pw=[REDACTED]\n");
  EXPECT_EQ(redact({"s3cr3t-value"}, {"s3cr3t-value"}), "[REDACTED]");
  EXPECT_EQ(redact({"s3cr3t-value"}, {"s3cr3t-values3cr3t-value"}), "[REDACTED][REDACTED]");
}

TEST(AgentRedactorTest, SecretSplitAcrossTwoChunksAtEverySplitPoint) {
  const std::string text = "<s3cr3t-value>";
  for (std::size_t cut = 0; cut <= text.size(); ++cut) {
    EXPECT_EQ(redact({"s3cr3t-value"}, {text.substr(0, cut), text.substr(cut)}), "<[REDACTED]>")
        << "cut at " << cut;
  }
}

TEST(AgentRedactorTest, SecretSplitAcrossThreeChunksAtEverySplitPoint) {
  const std::string text = "a s3cr3t-value b";
  for (std::size_t first = 0; first <= text.size(); ++first) {
    for (std::size_t second = first; second <= text.size(); ++second) {
      EXPECT_EQ(redact({"s3cr3t-value"}, {text.substr(0, first), text.substr(first, second - first),
                                          text.substr(second)}),
                "a [REDACTED] b")
          << "cuts at " << first << " and " << second;
    }
  }
}

TEST(AgentRedactorTest, EveryByteByItselfGivesTheSameAsOneChunk) {
  const std::vector<std::string> secrets = {"password1", "token-xyz"};
  const std::string text = "password1 and token-xyz, passwordtoken-xyzpassword1!";
  std::vector<std::string> bytes;
  for (char c : text) bytes.emplace_back(1, c);
  EXPECT_EQ(redact(secrets, bytes), redact(secrets, {text}));
  EXPECT_EQ(redact(secrets, {text}), "[REDACTED] and [REDACTED], password[REDACTED][REDACTED]!");
}

TEST(AgentRedactorTest, TwoSecretsAreBothRedacted) {
  EXPECT_EQ(redact({"alpha-1", "bravo-2"}, {"x alpha-1 y bravo-2 z"}),
            "x [REDACTED] y [REDACTED] z");
}

TEST(AgentRedactorTest, PrefixSharingSecretsRedactTheLongestMatch) {
  const std::vector<std::string> secrets = {"abcd", "abcdef"};
  EXPECT_EQ(redact(secrets, {"abcdef"}), "[REDACTED]") << "no 'ef' left behind";
  EXPECT_EQ(redact(secrets, {"abcdxx"}), "[REDACTED]xx");
  EXPECT_EQ(redact(secrets, {"abcd"}), "[REDACTED]") << "the shorter one at EOF";
  EXPECT_EQ(redact(secrets, {"abc", "de", "f"}), "[REDACTED]");
  EXPECT_EQ(redact(secrets, {"abc", "dx"}), "[REDACTED]x");
}

TEST(AgentRedactorTest, OverlappingSecretsLeaveNothingOfEitherRecognisable) {
  // "1234" and "3456" overlap in "123456": the leftmost is redacted, then scanning goes on
  // after it, so "56" remains: neither secret appears whole in the output.
  EXPECT_EQ(redact({"1234", "3456"}, {"123456"}), "[REDACTED]56");
  // A secret inside a held prefix of a longer one is still found at EOF.
  EXPECT_EQ(redact({"xabcdy", "abcd"}, {"xabcd"}), "x[REDACTED]");
  EXPECT_EQ(redact({"xabcdy", "abcd"}, {"xabcdz"}), "x[REDACTED]z");
}

TEST(AgentRedactorTest, AHeldPrefixThatIsNotTheSecretIsReleasedUnchanged) {
  Redactor redactor({"s3cr3t-value"});
  std::string out;
  redactor.feed("x s3cr3t-", out);
  EXPECT_EQ(out, "x ");
  EXPECT_EQ(redactor.held(), 7u);
  redactor.feed("vaLUE\n", out);
  EXPECT_EQ(out, "x s3cr3t-vaLUE\n");
  EXPECT_EQ(redactor.held(), 0u);
  // A repeated first byte: "ss3cr3t-value" holds "s", then releases it.
  EXPECT_EQ(redact({"s3cr3t-value"}, {"s", "s3cr3t-value"}), "s[REDACTED]");
}

TEST(AgentRedactorTest, OrdinaryTextIsNeverHeld) {
  Redactor redactor({"s3cr3t-value", "hunter22"});
  std::string out;
  for (const char* line : {"hello\n", "building target s\n", "3 tests passed\n", "hunt\n"}) {
    out.clear();
    redactor.feed(line, out);
    EXPECT_EQ(out, line) << "ordinary output was delayed";
    EXPECT_EQ(redactor.held(), 0u);
  }
}

TEST(AgentRedactorTest, HeldBytesAreFlushedAtEof) {
  Redactor redactor({"s3cr3t-value"});
  std::string out;
  redactor.feed("tail s3cr", out);
  EXPECT_EQ(out, "tail ");
  redactor.finish(out);
  EXPECT_EQ(out, "tail s3cr");
  EXPECT_EQ(redactor.held(), 0u);
}

TEST(AgentRedactorTest, BinaryDataWithoutSecretsPassesByteForByte) {
  std::string binary;
  for (int i = 0; i < 4096; ++i) binary.push_back(static_cast<char>((i * 7 + i / 256) & 0xff));
  std::vector<std::string> chunks;
  for (std::size_t at = 0; at < binary.size(); at += 100) chunks.push_back(binary.substr(at, 100));
  // The secret shares its first bytes with the data (it contains NULs and 0xff), never whole.
  const std::string secret("\x00\x07\x0e\x15\xff\xfe", 6);
  EXPECT_EQ(redact({secret}, chunks), binary);
  EXPECT_EQ(redact({}, chunks), binary);
}

TEST(AgentRedactorTest, BinarySecretIsRedacted) {
  const std::string secret("\x00\xff\x01\xfe", 4);
  EXPECT_EQ(redact({secret}, {std::string("a\x00\xff", 3), std::string("\x01\xfe"
                                                                       "b",
                                                                       3)}),
            "a[REDACTED]b");
}

TEST(AgentRedactorTest, SecretsShorterThanFourBytesAreNotRedacted) {
  Redactor redactor({"abc", "", "x"});
  EXPECT_FALSE(redactor.active());
  EXPECT_EQ(redact(redactor, {"abc x"}), "abc x");
  EXPECT_EQ(redact({"abc", "abcd"}, {"abc abcd"}), "abc [REDACTED]");
}

TEST(AgentRedactorTest, DuplicateSecretsActLikeOne) {
  EXPECT_EQ(redact({"same-value", "same-value"}, {"same-", "value"}), "[REDACTED]");
}

TEST(AgentRedactorTest, HoldsAtMostTheLongestSecretMinusOneByte) {
  Redactor redactor({"abcdefgh"});
  std::string out;
  redactor.feed("abcdefg", out);
  EXPECT_EQ(redactor.held(), 7u);
  redactor.feed("abcdefg", out);  // "abcdefgabcdefg": the first copy can no longer match
  EXPECT_EQ(out, "abcdefg");
  EXPECT_EQ(redactor.held(), 7u);
}

}  // namespace
}  // namespace sandbox::agent
