#include <gtest/gtest.h>

#include <string>

#include "cli/base64.hpp"

namespace sandbox::cli {
namespace {

using namespace std::literals;

std::string all_byte_values() {
  std::string bytes(256, '\0');
  for (int i = 0; i < 256; ++i) bytes[static_cast<std::size_t>(i)] = static_cast<char>(i);
  return bytes;
}

TEST(CliBase64Test, EncodesTheRfc4648TestVectors) {
  EXPECT_EQ(base64_encode(""), "");
  EXPECT_EQ(base64_encode("f"), "Zg==");
  EXPECT_EQ(base64_encode("fo"), "Zm8=");
  EXPECT_EQ(base64_encode("foo"), "Zm9v");
  EXPECT_EQ(base64_encode("foob"), "Zm9vYg==");
  EXPECT_EQ(base64_encode("fooba"), "Zm9vYmE=");
  EXPECT_EQ(base64_encode("foobar"), "Zm9vYmFy");
}

TEST(CliBase64Test, UsesTheStandardAlphabetNotTheUrlSafeOne) {
  EXPECT_EQ(base64_encode("\xfb\xff\xbf"s), "+/+/");
}

TEST(CliBase64Test, AllByteValuesRoundTrip) {
  const std::string bytes = all_byte_values();
  const std::string encoded = base64_encode(bytes);
  EXPECT_EQ(encoded.size(), (256u + 2) / 3 * 4);
  EXPECT_EQ(base64_decode(encoded), bytes);
}

TEST(CliBase64Test, EveryLengthAndEveryByteRoundTrips) {
  // Each length mod 3 (the padding cases) with every byte value in every position of a group.
  const std::string bytes = all_byte_values();
  for (std::size_t length = 0; length <= 6; ++length) {
    for (std::size_t start = 0; start + length <= bytes.size(); ++start) {
      const std::string piece = bytes.substr(start, length);
      ASSERT_EQ(base64_decode(base64_encode(piece)), piece)
          << "length " << length << " at " << start;
    }
  }
}

TEST(CliBase64Test, DecodeRejectsWhatEncodeNeverWrites) {
  for (auto text : {"Zg", "Zg=", "Z===", "====", "Zg==Zg==", "Zm9v\n", "Zm-v", "Zm_v",
                    "Zh==", "Zm9=", "Z m9"}) {
    EXPECT_EQ(base64_decode(text), std::nullopt) << text;
  }
}

}  // namespace
}  // namespace sandbox::cli
