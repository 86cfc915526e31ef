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
       {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 100, 101, 102, 103, 104, 105}) {
    std::error_code ec = static_cast<errc>(value);
    EXPECT_EQ(ec.category().name(), std::string("sandbox"));
    EXPECT_NE(error_name(ec), "sandbox") << value;
    EXPECT_FALSE(ec.message().empty()) << value;
  }
  EXPECT_EQ(error_name(errc::missing_exit_code), "missing_exit_code");
  EXPECT_EQ(error_name(errc::unavailable), "unavailable");
}

// gRPC 1.51's own words (OpenSSL 3 as Debian links it), as a client saw them.
constexpr std::string_view kUnknownCa =
    "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:40299: Ssl "
    "handshake failed: SSL_ERROR_SSL: error:0A000086:SSL routines::certificate verify failed";
constexpr std::string_view kNameMismatch =
    "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:3: Peer name "
    "localhost is not in peer certificate";
constexpr std::string_view kTlsToCleartext =
    "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:3: Ssl handshake "
    "failed: SSL_ERROR_SSL: error:0A00010B:SSL routines::wrong version number";
constexpr std::string_view kSocketClosed =
    "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:3: Socket closed";

TEST(ErrorTest, TlsFailuresReportedAsUnavailableAreTlsErrorsSayingWhich) {
  auto unknown_ca = detail::meaning_of_status(14, kUnknownCa);
  EXPECT_EQ(unknown_ca.error, errc::tls_error);
  EXPECT_EQ(unknown_ca.probe, detail::Probe::untrusted_agent) << "gRPC does not say why";
  EXPECT_TRUE(unknown_ca.message.starts_with("TLS: the agent's certificate is not trusted"));
  EXPECT_NE(unknown_ca.message.find(kUnknownCa), std::string::npos) << "gRPC's words kept";

  auto name = detail::meaning_of_status(14, kNameMismatch);
  EXPECT_EQ(name.error, errc::tls_error);
  EXPECT_NE(name.message.find("another name"), std::string::npos) << name.message;
  EXPECT_EQ(name.probe, detail::Probe::none);

  auto cleartext = detail::meaning_of_status(14, kTlsToCleartext);
  EXPECT_EQ(cleartext.error, errc::tls_error);
  EXPECT_NE(cleartext.message.find("does not speak TLS"), std::string::npos);

  // The per-call host check and TlsCredentials' verifier say it their way.
  EXPECT_EQ(detail::meaning_of_status(14,
                                      "Custom verification check failed with error: "
                                      "UNAUTHENTICATED: Hostname Verification Check failed.")
                .error,
            errc::tls_error);
}

TEST(ErrorTest, BoringSslSpellingsAreRecognisedToo) {
  EXPECT_EQ(detail::meaning_of_status(14,
                                      "Ssl handshake failed: SSL_ERROR_SSL: "
                                      "error:1000007d:SSL routines:OPENSSL_internal:"
                                      "CERTIFICATE_VERIFY_FAILED")
                .error,
            errc::tls_error);
  EXPECT_EQ(detail::meaning_of_status(14,
                                      "Ssl handshake failed: SSL_ERROR_SSL: "
                                      "error:100000f7:SSL routines:OPENSSL_internal:"
                                      "WRONG_VERSION_NUMBER")
                .error,
            errc::tls_error);
}

TEST(ErrorTest, AClosedConnectionStaysRetryableUntilAProbeExplainsIt) {
  auto closed = detail::meaning_of_status(14, kSocketClosed);
  EXPECT_EQ(closed.error, errc::unavailable);
  EXPECT_EQ(closed.probe, detail::Probe::closed_connection);
  EXPECT_EQ(closed.message, kSocketClosed);
  // A call that broke mid-stream is no new connection: nothing to probe.
  EXPECT_EQ(detail::meaning_of_status(14, "Socket closed").probe, detail::Probe::none);
  EXPECT_EQ(detail::meaning_of_status(14,
                                      "failed to connect to all addresses; last error: "
                                      "UNKNOWN: ipv4:127.0.0.1:3: Failed to connect to "
                                      "remote host: Connection refused")
                .probe,
            detail::Probe::none);
}

TEST(ErrorTest, TheTokenProvidersRefusalIsUnauthenticatedNotUnavailable) {
  auto refused = detail::meaning_of_status(
      14, "Getting metadata from plugin failed with error: token_provider: threw: vault down");
  EXPECT_EQ(refused.error, errc::unauthenticated);
  EXPECT_EQ(refused.message, "token_provider: threw: vault down");
  // Another plugin's failure (not the SDK's) keeps gRPC's code.
  EXPECT_EQ(detail::meaning_of_status(
                14, "Getting metadata from plugin failed with error: something else")
                .error,
            errc::unavailable);
}

TEST(ErrorTest, OtherCodesKeepTheirMeaningAndMessage) {
  auto invalid = detail::meaning_of_status(3, "argv: must not be empty");
  EXPECT_EQ(invalid.error, errc::invalid_argument);
  EXPECT_EQ(invalid.message, "argv: must not be empty");
  EXPECT_EQ(detail::meaning_of_status(16, "").message, "gRPC status 16");
  // Words that look like TLS's on another code change nothing.
  EXPECT_EQ(detail::meaning_of_status(13, kUnknownCa).error, errc::internal);
}

TEST(ErrorTest, CancellationIsNamedCancelled) {
  EXPECT_EQ(error_name(asio::error::operation_aborted), "cancelled");
  EXPECT_EQ(error_name(std::error_code()), "ok");
}

}  // namespace
}  // namespace sandbox
