#include "client/detail/tls_probe.hpp"

#include "client/detail/channel.hpp"

#include <netdb.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace sandbox::detail {
namespace {

using Clock = std::chrono::steady_clock;

struct Endpoint {
  std::string host;  // or the socket path, for unix
  std::string port;
  bool unix_socket = false;
};

std::optional<Endpoint> parse(std::string_view target) {
  if (target.starts_with("unix:")) {
    std::string_view path = target.substr(5);
    if (path.starts_with("//")) path.remove_prefix(2);  // unix:///abs/path
    if (path.empty()) return std::nullopt;
    return Endpoint{std::string(path), {}, true};
  }
  for (std::string_view scheme : {"dns:", "ipv4:", "ipv6:"}) {
    if (target.starts_with(scheme)) {
      target.remove_prefix(scheme.size());
      if (target.starts_with("//")) {  // an authority (DNS server) we do not use
        const auto slash = target.find('/', 2);
        if (slash == std::string_view::npos) return std::nullopt;
        target.remove_prefix(slash + 1);
      }
      break;
    }
  }
  if (target.find(',') != std::string_view::npos) return std::nullopt;  // address lists
  const auto colon = target.rfind(':');
  if (colon == std::string_view::npos || colon + 1 == target.size()) return std::nullopt;
  std::string_view host = target.substr(0, colon);
  if (host.starts_with('[') && host.ends_with(']')) host = host.substr(1, host.size() - 2);
  if (host.empty()) return std::nullopt;
  return Endpoint{std::string(host), std::string(target.substr(colon + 1)), false};
}

struct FdCloser {
  int fd = -1;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

int remaining_ms(Clock::time_point until) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

bool wait_for(int fd, short events, Clock::time_point until) {
  pollfd entry{fd, events, 0};
  int ready = 0;
  do {
    ready = ::poll(&entry, 1, remaining_ms(until));
  } while (ready < 0 && errno == EINTR);
  return ready == 1 && (entry.revents & events) != 0;
}

// A non-blocking socket connected to `endpoint`, or -1.
int connect_to(const Endpoint& endpoint, Clock::time_point until) {
  auto attempt = [&](int family, const sockaddr* address, socklen_t length) {
    FdCloser fd{::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
    if (fd.fd < 0) return -1;
    if (::connect(fd.fd, address, length) != 0) {
      if (errno != EINPROGRESS || !wait_for(fd.fd, POLLOUT, until)) return -1;
      int error = 0;
      socklen_t size = sizeof error;
      if (::getsockopt(fd.fd, SOL_SOCKET, SO_ERROR, &error, &size) != 0 || error != 0) return -1;
    }
    return std::exchange(fd.fd, -1);
  };
  if (endpoint.unix_socket) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (endpoint.host.size() >= sizeof address.sun_path) return -1;
    std::memcpy(address.sun_path, endpoint.host.data(), endpoint.host.size());
    return attempt(AF_UNIX, reinterpret_cast<const sockaddr*>(&address), sizeof address);
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (::getaddrinfo(endpoint.host.c_str(), endpoint.port.c_str(), &hints, &found) != 0) return -1;
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> addresses(found, &::freeaddrinfo);
  for (const addrinfo* a = found; a != nullptr && remaining_ms(until) > 0; a = a->ai_next) {
    if (int fd = attempt(a->ai_family, a->ai_addr, a->ai_addrlen); fd >= 0) return fd;
  }
  return -1;
}

template <class T, void (*Free)(T*)>
struct Freer {
  void operator()(T* p) const { Free(p); }
};
using SslContext = std::unique_ptr<SSL_CTX, Freer<SSL_CTX, SSL_CTX_free>>;
using Ssl = std::unique_ptr<SSL, Freer<SSL, SSL_free>>;
using Bio = std::unique_ptr<BIO, Freer<BIO, BIO_free_all>>;
using Cert = std::unique_ptr<X509, Freer<X509, X509_free>>;
using Key = std::unique_ptr<EVP_PKEY, Freer<EVP_PKEY, EVP_PKEY_free>>;

Bio memory(const std::string& text) {
  return Bio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

// OpenSSL over a non-blocking socket through memory BIOs, so that the socket is written
// with MSG_NOSIGNAL: a probe must never raise SIGPIPE in the user's process.
class Connection {
 public:
  Connection(SSL* ssl, int fd, Clock::time_point until) : ssl_(ssl), fd_(fd), until_(until) {
    in_ = BIO_new(BIO_s_mem());
    out_ = BIO_new(BIO_s_mem());
    if (in_ != nullptr && out_ != nullptr) {
      BIO_set_mem_eof_return(in_, -1);  // "no data yet" until the peer closes
      SSL_set_bio(ssl_, in_, out_);     // ssl owns both now
    } else {
      BIO_free(in_);
      BIO_free(out_);
      in_ = out_ = nullptr;
    }
  }
  [[nodiscard]] bool usable() const { return in_ != nullptr; }

  // Runs `step` (SSL_connect, SSL_read...) until it no longer wants I/O or time is up;
  // returns its last result and sets `error` to SSL_get_error's.
  template <class Step>
  int drive(int& error, Step step) {
    for (;;) {
      const int result = step();
      error = result > 0 ? SSL_ERROR_NONE : SSL_get_error(ssl_, result);
      if (!flush()) return result;
      if (error != SSL_ERROR_WANT_READ) return result;
      if (!fill()) return result;
    }
  }

 private:
  bool flush() {
    char buffer[4096];
    int pending = 0;
    while ((pending = BIO_read(out_, buffer, sizeof buffer)) > 0) {
      int sent = 0;
      while (sent < pending) {
        const ssize_t n =
            ::send(fd_, buffer + sent, static_cast<std::size_t>(pending - sent), MSG_NOSIGNAL);
        if (n > 0) {
          sent += static_cast<int>(n);
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
          if (!wait_for(fd_, POLLOUT, until_)) return false;
        } else {
          return false;
        }
      }
    }
    return true;
  }
  // Feeds what the peer sent; at its end of stream, makes OpenSSL see EOF.
  bool fill() {
    char buffer[4096];
    if (!wait_for(fd_, POLLIN, until_)) return false;
    const ssize_t n = ::recv(fd_, buffer, sizeof buffer, 0);
    if (n > 0) return BIO_write(in_, buffer, static_cast<int>(n)) == n;
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return true;
    BIO_set_mem_eof_return(in_, 0);
    return true;
  }

  SSL* ssl_;
  int fd_;
  Clock::time_point until_;
  BIO* in_ = nullptr;
  BIO* out_ = nullptr;
};

// Without TLS: does the agent answer a ClientHello in TLS?
bool answers_tls(const Endpoint& endpoint, Clock::time_point until) {
  SslContext context(SSL_CTX_new(TLS_client_method()));
  if (!context) return false;
  SSL_CTX_set_verify(context.get(), SSL_VERIFY_NONE, nullptr);  // nothing is sent but a hello
  Ssl ssl(SSL_new(context.get()));
  FdCloser fd{connect_to(endpoint, until)};
  if (!ssl || fd.fd < 0) return false;
  Connection connection(ssl.get(), fd.fd, until);
  if (!connection.usable()) return false;
  if (!endpoint.unix_socket) SSL_set_tlsext_host_name(ssl.get(), endpoint.host.c_str());
  int error = 0;
  connection.drive(error, [&] { return SSL_connect(ssl.get()); });
  // The agent's certificate came: whatever happened next, it speaks TLS.
  return SSL_get0_peer_certificate(ssl.get()) != nullptr;
}

// The runner's CA (or the system's roots) and client identity, as the probe presents them.
// False when they cannot be loaded (the real handshake would have said so).
bool configure(SSL_CTX* context, const TlsConfig& tls, bool with_identity, bool& has_identity) {
  const std::string ca = read_pem(tls.ca_pem, tls.ca_file, "ca_file");
  if (ca.empty()) {
    if (SSL_CTX_set_default_verify_paths(context) != 1) return false;
  } else {
    Bio bio = memory(ca);
    X509_STORE* store = SSL_CTX_get_cert_store(context);
    int added = 0;
    while (Cert cert{PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)}) {
      added += X509_STORE_add_cert(store, cert.get());
    }
    if (added == 0) return false;
  }
  SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nullptr);
  const std::string chain = read_pem(tls.cert_pem, tls.cert_file, "cert_file");
  const std::string key_pem = read_pem(tls.key_pem, tls.key_file, "key_file");
  has_identity = !chain.empty() && !key_pem.empty();
  if (!has_identity || !with_identity) return true;
  Bio chain_bio = memory(chain);
  Cert leaf{PEM_read_bio_X509(chain_bio.get(), nullptr, nullptr, nullptr)};
  if (!leaf || SSL_CTX_use_certificate(context, leaf.get()) != 1) return false;
  while (X509* extra = PEM_read_bio_X509(chain_bio.get(), nullptr, nullptr, nullptr)) {
    SSL_CTX_add0_chain_cert(context, extra);  // the context owns it now
  }
  Bio key_bio = memory(key_pem);
  Key key{PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr)};
  return key && SSL_CTX_use_PrivateKey(context, key.get()) == 1;
}

std::string utc(const ASN1_TIME* time);

enum class Handshake { unexplained, certificate_rejected };

// A client session that checks the agent's name as gRPC does and offers HTTP/2.
Ssl client_session(SSL_CTX* context, const Endpoint& endpoint, const TlsConfig& tls) {
  Ssl ssl(SSL_new(context));
  if (!ssl) return ssl;
  const std::string name = tls.server_name.empty() ? endpoint.host : tls.server_name;
  if (!endpoint.unix_socket || !tls.server_name.empty()) {
    // An IP address is checked against the certificate's IP names and never sent as SNI.
    if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl.get()), name.c_str()) != 1) {
      SSL_set_tlsext_host_name(ssl.get(), name.c_str());
      SSL_set1_host(ssl.get(), name.c_str());
    }
  }
  static constexpr unsigned char kAlpn[] = {2, 'h', '2'};
  SSL_set_alpn_protos(ssl.get(), kAlpn, sizeof kAlpn);
  return ssl;
}

// The first verification failure of a handshake and the dates of the certificate it was
// about (OpenSSL keeps no peer certificate of a handshake that failed).
struct VerifyFailure {
  int error = X509_V_OK;
  std::string not_before;
  std::string not_after;
};

int record_failure(int ok, X509_STORE_CTX* store) {
  if (ok == 1) return 1;
  auto* ssl =
      static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* failure = ssl ? static_cast<VerifyFailure*>(SSL_get_app_data(ssl)) : nullptr;
  if (failure != nullptr && failure->error == X509_V_OK) {
    failure->error = X509_STORE_CTX_get_error(store);
    if (const X509* cert = X509_STORE_CTX_get_current_cert(store)) {
      failure->not_before = utc(X509_get0_notBefore(cert));
      failure->not_after = utc(X509_get0_notAfter(cert));
    }
  }
  return 0;
}

// Why the runner's verification of the agent's certificate fails; empty when it does not.
std::string verification_failure(const Endpoint& endpoint, const TlsConfig& tls,
                                 Clock::time_point until) {
  SslContext context(SSL_CTX_new(TLS_client_method()));
  bool has_identity = false;
  if (!context || !configure(context.get(), tls, false, has_identity)) return {};
  SSL_CTX_set_verify(context.get(), SSL_VERIFY_PEER, &record_failure);
  Ssl ssl = client_session(context.get(), endpoint, tls);
  FdCloser fd{connect_to(endpoint, until)};
  if (!ssl || fd.fd < 0) return {};
  VerifyFailure failure;
  SSL_set_app_data(ssl.get(), &failure);
  Connection connection(ssl.get(), fd.fd, until);
  if (!connection.usable()) return {};
  int error = 0;
  connection.drive(error, [&] { return SSL_connect(ssl.get()); });
  switch (failure.error) {
    case X509_V_OK:
      return {};
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return "the agent's certificate expired on " + failure.not_after;
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return "the agent's certificate is valid only from " + failure.not_before;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
      return std::string("the agent's certificate is signed by an unknown CA: none in ") +
             (tls.ca_pem.empty() && tls.ca_file.empty() ? "the system's roots"
                                                        : "tls.ca_file/tls.ca_pem");
    default:
      return std::string("the agent's certificate failed verification: ") +
             X509_verify_cert_error_string(failure.error);
  }
}

// With TLS: does the agent accept a handshake with the runner's own certificate, then
// close instead of speaking HTTP/2?
Handshake probe_client_certificate(const Endpoint& endpoint, const TlsConfig& tls,
                                   bool& has_identity, Clock::time_point until) {
  SslContext context(SSL_CTX_new(TLS_client_method()));
  if (!context || !configure(context.get(), tls, true, has_identity)) {
    return Handshake::unexplained;
  }
  Ssl ssl = client_session(context.get(), endpoint, tls);
  FdCloser fd{connect_to(endpoint, until)};
  if (!ssl || fd.fd < 0) return Handshake::unexplained;
  Connection connection(ssl.get(), fd.fd, until);
  if (!connection.usable()) return Handshake::unexplained;
  int error = 0;
  if (connection.drive(error, [&] { return SSL_connect(ssl.get()); }) != 1) {
    // TLS 1.2 fails inside the handshake, after the agent's certificate came (and passed).
    const bool verified_agent = SSL_get0_peer_certificate(ssl.get()) != nullptr &&
                                SSL_get_verify_result(ssl.get()) == X509_V_OK;
    return verified_agent && error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE
               ? Handshake::certificate_rejected
               : Handshake::unexplained;
  }
  // TLS 1.3: the client's side is done before the agent has looked at its certificate. A
  // gRPC server that accepted it answers the HTTP/2 preface with its SETTINGS.
  static constexpr char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\4\0\0\0\0\0";
  if (connection.drive(error,
                       [&] { return SSL_write(ssl.get(), kPreface, sizeof kPreface - 1); }) <= 0) {
    return error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE
               ? Handshake::unexplained
               : Handshake::certificate_rejected;
  }
  char byte = 0;
  const int read = connection.drive(error, [&] { return SSL_read(ssl.get(), &byte, 1); });
  if (read > 0) return Handshake::unexplained;  // accepted: the failure was something else
  return error == SSL_ERROR_ZERO_RETURN || error == SSL_ERROR_SYSCALL || error == SSL_ERROR_SSL
             ? Handshake::certificate_rejected
             : Handshake::unexplained;
}

std::string utc(const ASN1_TIME* time) {
  std::tm parts{};
  if (ASN1_TIME_to_tm(time, &parts) != 1) return "an unreadable date";
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &parts);
  return text;
}

// What the runner's own certificate says about being rejected.
std::string rejection_of(const TlsConfig& tls) {
  const std::string pem = read_pem(tls.cert_pem, tls.cert_file, "cert_file");
  Bio bio = memory(pem);
  Cert cert{PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)};
  if (cert && X509_cmp_current_time(X509_get0_notAfter(cert.get())) < 0) {
    return "the agent rejected this runner's client certificate: it expired on " +
           utc(X509_get0_notAfter(cert.get()));
  }
  if (cert && X509_cmp_current_time(X509_get0_notBefore(cert.get())) > 0) {
    return "the agent rejected this runner's client certificate: it is valid only from " +
           utc(X509_get0_notBefore(cert.get()));
  }
  return "the agent rejected this runner's client certificate: not signed by a CA it "
         "trusts (--client-ca), or not for client authentication";
}

}  // namespace

std::string explain_failure(Probe probe, std::string_view target,
                            const std::optional<TlsConfig>& tls,
                            std::chrono::milliseconds timeout) noexcept {
  try {
    const std::optional<Endpoint> endpoint = parse(target);
    if (!endpoint || probe == Probe::none) return {};
    const auto until = Clock::now() + timeout;
    if (probe == Probe::untrusted_agent) {
      return tls ? verification_failure(*endpoint, *tls, until) : std::string();
    }
    if (!tls) {
      return answers_tls(*endpoint, until)
                 ? "the agent speaks TLS, and this runner has no tls configured"
                 : std::string();
    }
    bool has_identity = false;
    if (probe_client_certificate(*endpoint, *tls, has_identity, until) == Handshake::unexplained) {
      return {};
    }
    return has_identity ? rejection_of(*tls)
                        : "the agent requires a client certificate (mTLS), and this runner has "
                          "none (tls.cert_file and tls.key_file)";
  } catch (...) {
    return {};
  }
}

}  // namespace sandbox::detail
