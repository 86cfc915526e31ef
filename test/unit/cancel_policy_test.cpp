// should_send_cancel: every (reason, status, exit received) row. The agent keeps the
// command of a cancelled or lost Exec call for a reattach grace, so this decides whether
// a finished call leaves the command running (a retry may reattach) or has it killed.

#include <gtest/gtest.h>

#include <array>
#include <string>

#include "client/detail/cancel_policy.hpp"

namespace sandbox::detail {
namespace {

using grpc::StatusCode;

constexpr std::array all_statuses = {
    StatusCode::OK,
    StatusCode::CANCELLED,
    StatusCode::UNKNOWN,
    StatusCode::INVALID_ARGUMENT,
    StatusCode::DEADLINE_EXCEEDED,
    StatusCode::NOT_FOUND,
    StatusCode::ALREADY_EXISTS,
    StatusCode::PERMISSION_DENIED,
    StatusCode::RESOURCE_EXHAUSTED,
    StatusCode::FAILED_PRECONDITION,
    StatusCode::ABORTED,
    StatusCode::OUT_OF_RANGE,
    StatusCode::UNIMPLEMENTED,
    StatusCode::INTERNAL,
    StatusCode::UNAVAILABLE,
    StatusCode::DATA_LOSS,
    StatusCode::UNAUTHENTICATED,
};

constexpr std::array all_reasons = {CancelReason::none, CancelReason::user, CancelReason::closed,
                                    CancelReason::exited, CancelReason::violation};

std::string row(CancelReason reason, StatusCode status, bool exit_received) {
  return "reason " + std::to_string(static_cast<int>(reason)) + ", status " +
         std::to_string(static_cast<int>(status)) + ", exit received " +
         (exit_received ? "yes" : "no");
}

// A decision the compiler can check too: it is a pure function.
static_assert(should_send_cancel(CancelReason::user, StatusCode::CANCELLED, false));
static_assert(!should_send_cancel(CancelReason::none, StatusCode::UNAVAILABLE, false));

TEST(CancelPolicyTest, CallerCancellationSendsCancelWhateverTheStatus) {
  for (auto status : all_statuses) {
    EXPECT_TRUE(should_send_cancel(CancelReason::user, status, false))
        << row(CancelReason::user, status, false);
  }
}

TEST(CancelPolicyTest, CloseSendsCancelWhateverTheStatus) {
  for (auto status : all_statuses) {
    EXPECT_TRUE(should_send_cancel(CancelReason::closed, status, false))
        << row(CancelReason::closed, status, false);
  }
}

TEST(CancelPolicyTest, ProtocolViolationSendsCancelBecauseTheClientAbandonsTheExec) {
  for (auto status : all_statuses) {
    EXPECT_TRUE(should_send_cancel(CancelReason::violation, status, false))
        << row(CancelReason::violation, status, false);
  }
}

TEST(CancelPolicyTest, EndingTheRpcAfterTheExitSendsNoCancel) {
  for (auto status : all_statuses) {
    EXPECT_FALSE(should_send_cancel(CancelReason::exited, status, false))
        << row(CancelReason::exited, status, false);
  }
}

TEST(CancelPolicyTest, AReceivedExitNeverSendsCancelWhateverTheReasonAndStatus) {
  for (auto reason : all_reasons) {
    for (auto status : all_statuses) {
      EXPECT_FALSE(should_send_cancel(reason, status, true)) << row(reason, status, true);
    }
  }
}

TEST(CancelPolicyTest, DeadlineWithoutExitSendsCancel) {
  EXPECT_TRUE(should_send_cancel(CancelReason::none, StatusCode::DEADLINE_EXCEEDED, false));
}

TEST(CancelPolicyTest, UnavailableSendsNoCancelSoARetryCanReattach) {
  EXPECT_FALSE(should_send_cancel(CancelReason::none, StatusCode::UNAVAILABLE, false));
}

TEST(CancelPolicyTest, OkWithoutExitSendsNoCancel) {
  EXPECT_FALSE(should_send_cancel(CancelReason::none, StatusCode::OK, false));
}

TEST(CancelPolicyTest, EveryOtherStatusWithoutAClientReasonSendsNoCancel) {
  for (auto status : all_statuses) {
    if (status == StatusCode::DEADLINE_EXCEEDED) continue;
    EXPECT_FALSE(should_send_cancel(CancelReason::none, status, false))
        << row(CancelReason::none, status, false);
  }
}

}  // namespace
}  // namespace sandbox::detail
