#include "agent/auth.hpp"

#include <gtest/gtest.h>

namespace sandbox::agent {
namespace {

TEST(AgentAuthTest, EqualStringsMatch) { EXPECT_TRUE(constant_time_equals("s3cret", "s3cret")); }

TEST(AgentAuthTest, DifferentStringsOfEqualLengthDoNotMatch) {
  EXPECT_FALSE(constant_time_equals("s3cret", "s3creT"));
  EXPECT_FALSE(constant_time_equals("s3cret", "S3cret"));
}

TEST(AgentAuthTest, PrefixesAndExtensionsDoNotMatch) {
  EXPECT_FALSE(constant_time_equals("s3cret", "s3cre"));
  EXPECT_FALSE(constant_time_equals("s3cret", "s3crets3cret"));  // the secret twice
  EXPECT_FALSE(constant_time_equals("s3cret", ""));
}

TEST(AgentAuthTest, EmptySecretNeverMatches) { EXPECT_FALSE(constant_time_equals("", "")); }

TEST(AgentAuthTest, BearerHeaderMustCarryTheSchemeAndTheToken) {
  EXPECT_TRUE(bearer_token_matches("tok", "Bearer tok"));
  EXPECT_FALSE(bearer_token_matches("tok", "tok"));
  EXPECT_FALSE(bearer_token_matches("tok", "Basic tok"));
  EXPECT_FALSE(bearer_token_matches("tok", "Bearer tok "));
  EXPECT_FALSE(bearer_token_matches("tok", "Bearer "));
}

}  // namespace
}  // namespace sandbox::agent
