#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>

#include "cli/json_lines.hpp"

namespace sandbox::cli {
namespace {

using namespace std::literals;

TEST(CliJsonStringTest, QuotesAndEscapesQuoteAndBackslash) {
  EXPECT_EQ(json_string(""), R"("")");
  EXPECT_EQ(json_string("plain text"), R"("plain text")");
  EXPECT_EQ(json_string(R"(say "hi" \ bye)"), R"("say \"hi\" \\ bye")");
}

TEST(CliJsonStringTest, EscapesEveryControlCharacterAsU00XX) {
  for (int c = 0; c < 0x20; ++c) {
    char expected[16];
    std::snprintf(expected, sizeof expected, "\"\\u%04x\"", c);
    EXPECT_EQ(json_string(std::string(1, static_cast<char>(c))), expected) << "byte " << c;
  }
  EXPECT_EQ(json_string("\x7f"), R"("\u007f")");
}

TEST(CliJsonStringTest, KeepsPrintableAsciiAsIs) {
  for (int c = 0x20; c < 0x7f; ++c) {
    if (c == '"' || c == '\\') continue;
    const std::string one(1, static_cast<char>(c));
    EXPECT_EQ(json_string(one), "\"" + one + "\"") << "byte " << c;
  }
}

TEST(CliJsonStringTest, KeepsWellFormedUtf8) {
  // 2-, 3- and 4-byte sequences, and the edges of the valid ranges.
  for (auto text : {"caf\xc3\xa9"s, "\xe2\x82\xac"s, "\xf0\x9f\x98\x80"s, "\xc2\x80"s,
                    "\xed\x9f\xbf"s, "\xee\x80\x80"s, "\xef\xbf\xbf"s, "\xf4\x8f\xbf\xbf"s}) {
    EXPECT_EQ(json_string(text), "\"" + text + "\"");
  }
}

TEST(CliJsonStringTest, ReplacesEachByteOfMalformedUtf8) {
  const std::string bad = R"("\ufffd")";
  EXPECT_EQ(json_string("\x80"), bad);                                          // lone continuation
  EXPECT_EQ(json_string("\xff"), bad);                                          // never in UTF-8
  EXPECT_EQ(json_string("\xc0\xaf"), R"("\ufffd\ufffd")");                      // overlong '/'
  EXPECT_EQ(json_string("\xe0\x80\xaf"), R"("\ufffd\ufffd\ufffd")");            // overlong
  EXPECT_EQ(json_string("\xed\xa0\x80"), R"("\ufffd\ufffd\ufffd")");            // surrogate U+D800
  EXPECT_EQ(json_string("\xf4\x90\x80\x80"), R"("\ufffd\ufffd\ufffd\ufffd")");  // > U+10FFFF
  EXPECT_EQ(json_string("\xc3"), bad);                        // truncated at the end
  EXPECT_EQ(json_string("\xe2\x82z"), R"("\ufffd\ufffdz")");  // truncated mid-text
  EXPECT_EQ(json_string("a\xc3\xa9\xffz"), "\"a\xc3\xa9\\ufffdz\"");
}

TEST(CliJsonLinesTest, StartedLineCarriesTheExecIdentity) {
  EXPECT_EQ(
      started_line({.exec_id = "e-1", .sandbox_id = "sb \"1\"", .effective_profile = "strict"}),
      R"({"event":"started","exec_id":"e-1","sandbox_id":"sb \"1\"","effective_profile":"strict"})"
      "\n");
}

TEST(CliJsonLinesTest, ChunkLinesCarryStreamOffsetAndBase64Data) {
  EXPECT_EQ(chunk_line({.stream = OutputStream::out, .data = "hello\n", .offset = 0}),
            R"({"event":"stdout","offset":0,"data":"aGVsbG8K"})"
            "\n");
  EXPECT_EQ(chunk_line({.stream = OutputStream::err, .data = "\0\xff"s, .offset = 4096}),
            R"({"event":"stderr","offset":4096,"data":"AP8="})"
            "\n");
}

TEST(CliJsonLinesTest, ExitLineCarriesEveryExitDetail) {
  ExitStatus status{.exit_code = 137,
                    .signal = 9,
                    .timed_out = true,
                    .stdout_truncated = true,
                    .stderr_truncated = false,
                    .stdout_total = 18446744073709551615u,
                    .stderr_total = 12,
                    .duration = std::chrono::milliseconds(1500)};
  EXPECT_EQ(exit_line(status),
            R"({"event":"exit","exit_code":137,"signal":9,"timed_out":true,)"
            R"("stdout_truncated":true,"stderr_truncated":false,)"
            R"("stdout_total":18446744073709551615,"stderr_total":12,"duration_ms":1500})"
            "\n");
}

TEST(CliJsonLinesTest, ErrorLineEscapesItsMessage) {
  EXPECT_EQ(error_line("unavailable", "no \"agent\"\nat \xff"),
            R"({"event":"error","code":"unavailable","message":"no \"agent\"\u000aat \ufffd"})"
            "\n");
}

TEST(CliJsonLinesTest, EveryLineIsOneLine) {
  const std::string all_controls = [] {
    std::string s;
    for (int c = 0; c < 0x20; ++c) s += static_cast<char>(c);
    return s;
  }();
  for (const auto& line :
       {started_line({all_controls, all_controls, all_controls}), error_line("x", all_controls),
        chunk_line({.data = all_controls}), exit_line({})}) {
    EXPECT_EQ(line.find('\n'), line.size() - 1) << line;
  }
}

}  // namespace
}  // namespace sandbox::cli
