#include "sandbox/error.hpp"

#include <gtest/gtest.h>

#include <asio/error.hpp>

#include "client/detail/status_mapping.hpp"

namespace sandbox {
namespace {

TEST(ErrorTest, GrpcCodesMapOneToOneOntoErrc) {
  EXPECT_FALSE(detail::error_from_grpc_code(0));
  EXPECT_EQ(detail::error_from_grpc_code(4), errc::deadline_exceeded);
  EXPECT_EQ(detail::error_from_grpc_code(14), errc::unavailable);
  EXPECT_EQ(detail::error_from_grpc_code(16), errc::unauthenticated);
  EXPECT_EQ(detail::error_from_grpc_code(15), errc::data_loss);
  EXPECT_EQ(detail::error_from_grpc_code(17), errc::unknown);
  EXPECT_EQ(detail::error_from_grpc_code(-1), errc::unknown);
}

TEST(ErrorTest, EveryCodeHasANameAndAMessage) {
  for (int value :
       {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 100, 101, 102, 103, 104}) {
    std::error_code ec = static_cast<errc>(value);
    EXPECT_EQ(ec.category().name(), std::string("sandbox"));
    EXPECT_NE(error_name(ec), "sandbox") << value;
    EXPECT_FALSE(ec.message().empty()) << value;
  }
  EXPECT_EQ(error_name(errc::missing_exit_code), "missing_exit_code");
  EXPECT_EQ(error_name(errc::unavailable), "unavailable");
}

TEST(ErrorTest, CancellationIsNamedCancelled) {
  EXPECT_EQ(error_name(asio::error::operation_aborted), "cancelled");
  EXPECT_EQ(error_name(std::error_code()), "ok");
}

}  // namespace
}  // namespace sandbox
