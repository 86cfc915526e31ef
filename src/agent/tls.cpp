#include "agent/tls.hpp"

#include <grpcpp/security/tls_certificate_provider.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <stdexcept>

#include "agent/agent_server.hpp"

namespace sandbox::agent {
namespace {

std::string read_file(const std::filesystem::path& path, const char* flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw std::runtime_error(std::string(flag) + ": cannot read '" + path.string() +
                             "': " + std::strerror(errno));
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Deleter {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};

std::unique_ptr<BIO, BioDeleter> memory_bio(const std::string& pem) {
  return std::unique_ptr<BIO, BioDeleter>(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// The first certificate of a PEM file, or null.
std::unique_ptr<X509, X509Deleter> first_certificate(const std::string& pem) {
  auto bio = memory_bio(pem);
  return std::unique_ptr<X509, X509Deleter>(
      bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr);
}

// Checked at startup, where a mistake is a clear refusal to start instead of a server whose
// every handshake fails. Files replaced later are re-read by gRPC's file watcher.
void check_identity(const AgentOptions& options) {
  const std::string cert_pem = read_file(options.tls_cert_file, "--tls-cert");
  const std::string key_pem = read_file(options.tls_key_file, "--tls-key");
  auto cert = first_certificate(cert_pem);
  if (!cert) {
    throw std::runtime_error("--tls-cert: '" + options.tls_cert_file.string() +
                             "' holds no PEM certificate");
  }
  auto key_bio = memory_bio(key_pem);
  std::unique_ptr<EVP_PKEY, KeyDeleter> key(
      key_bio ? PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr) : nullptr);
  if (!key) {
    throw std::runtime_error("--tls-key: '" + options.tls_key_file.string() +
                             "' holds no unencrypted PEM private key");
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    throw std::runtime_error("--tls-key: '" + options.tls_key_file.string() +
                             "' is not the key of the certificate in --tls-cert");
  }
  if (!options.client_ca_file.empty() &&
      !first_certificate(read_file(options.client_ca_file, "--client-ca"))) {
    throw std::runtime_error("--client-ca: '" + options.client_ca_file.string() +
                             "' holds no PEM certificate");
  }
}

}  // namespace

std::string security_violation(const AgentOptions& options) {
  const bool cert = !options.tls_cert_file.empty();
  const bool key = !options.tls_key_file.empty();
  if (cert && !key) return "--tls-cert: requires --tls-key (the certificate's private key)";
  if (key && !cert) return "--tls-key: requires --tls-cert";
  if (!options.client_ca_file.empty() && !cert) {
    return "--client-ca: requires --tls-cert and --tls-key (client certificates are verified "
           "only over TLS)";
  }
  if (options.tls_reload_interval < std::chrono::seconds(1)) {
    return "--tls-reload-interval: must be at least 1s";
  }
  if (options.token.empty() && options.client_ca_file.empty() && !options.allow_unauthenticated) {
    return "--token-file or --client-ca: required unless --allow-unauthenticated (refusing to "
           "serve without authentication)";
  }
  return {};
}

std::shared_ptr<grpc::ServerCredentials> server_credentials(const AgentOptions& options) {
  if (options.tls_cert_file.empty()) return grpc::InsecureServerCredentials();
  check_identity(options);
  const auto interval = static_cast<unsigned int>(
      std::chrono::ceil<std::chrono::seconds>(options.tls_reload_interval).count());
  const bool verify_clients = !options.client_ca_file.empty();
  using grpc::experimental::FileWatcherCertificateProvider;
  auto provider =
      verify_clients ? std::make_shared<FileWatcherCertificateProvider>(
                           options.tls_key_file.string(), options.tls_cert_file.string(),
                           options.client_ca_file.string(), interval)
                     : std::make_shared<FileWatcherCertificateProvider>(
                           options.tls_key_file.string(), options.tls_cert_file.string(), interval);
  grpc::experimental::TlsServerCredentialsOptions tls(provider);
  tls.watch_identity_key_cert_pairs();
  if (verify_clients) {
    // Verified in the handshake: a rejected client's connection never opens, so its next
    // one presents whatever certificate it has rotated to. gRPC closes it without a TLS
    // alert; the SDK finds out why on its side (docs/security.md).
    tls.watch_root_certs();
    tls.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    tls.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  return grpc::experimental::TlsServerCredentials(tls);
}

}  // namespace sandbox::agent
