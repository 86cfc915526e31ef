#include "agent/command_line.hpp"

#include <charconv>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "agent/tls.hpp"
#include "common/quantities.hpp"

namespace sandbox::agent {
namespace {

std::string read_token_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) throw CommandLineError("--token-file: cannot read '" + path + "'");
  std::ostringstream contents;
  contents << file.rdbuf();
  std::string token = contents.str();
  const std::size_t first = token.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) throw CommandLineError("--token-file: '" + path + "' is empty");
  token = token.substr(first, token.find_last_not_of(" \t\r\n") - first + 1);
  for (unsigned char c : token) {
    // The token travels in an HTTP/2 header: visible ASCII only.
    if (c < 0x21 || c > 0x7e) {
      throw CommandLineError("--token-file: the token must be printable ASCII without spaces");
    }
  }
  return token;
}

std::string non_empty(std::string_view flag, std::string text) {
  if (text.empty()) throw CommandLineError(std::string(flag) + ": must not be empty");
  return text;
}

// A duration flag where 0 is meaningful (it disables what the flag delays).
std::chrono::milliseconds duration_flag(std::string_view flag, const std::string& text) {
  if (text == "0") return std::chrono::milliseconds(0);
  if (auto duration = parse_duration(text)) return *duration;
  throw CommandLineError(std::string(flag) +
                         ": expected a duration such as 500ms, 30s, 5m, 1h, whole seconds or 0, "
                         "got '" +
                         text + "'");
}

// A duration flag that must be positive.
std::chrono::milliseconds positive_duration_flag(std::string_view flag, const std::string& text) {
  if (auto duration = parse_duration(text)) return *duration;
  throw CommandLineError(std::string(flag) +
                         ": expected a positive duration such as 500ms, 30s, 5m, 1h or whole "
                         "seconds, got '" +
                         text + "'");
}

std::uint64_t byte_count_flag(std::string_view flag, const std::string& text) {
  if (auto bytes = parse_byte_count(text)) return *bytes;
  throw CommandLineError(std::string(flag) +
                         ": expected a positive byte count such as 65536, 64K, 8M or 1G, got '" +
                         text + "'");
}

std::size_t count_flag(std::string_view flag, const std::string& text) {
  std::size_t n = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, n);
  if (ec != std::errc() || ptr != end || n == 0) {
    throw CommandLineError(std::string(flag) + ": expected a positive whole number, got '" + text +
                           "'");
  }
  return n;
}

// One of two named values: "--sandbox: expected bubblewrap or none, got 'docker'".
template <class Value>
Value choice(std::string_view flag, const std::string& text,
             const std::pair<const char*, Value> (&options)[2]) {
  for (const auto& [name, value] : options) {
    if (text == name) return value;
  }
  throw CommandLineError(std::string(flag) + ": expected " + options[0].first + " or " +
                         options[1].first + ", got '" + text + "'");
}

}  // namespace

std::string usage() {
  return "usage: sandbox-agent --listen ADDR [--token-file FILE] [--allow-unauthenticated]\n"
         "                     [--tls-cert FILE --tls-key FILE [--client-ca FILE]]\n"
         "                     [--tls-reload-interval DURATION]\n"
         "                     [--workspace DIR] [--sandbox-id ID] [--reattach-grace DURATION]\n"
         "                     [--resume-retention DURATION] [--resume-buffer BYTES]\n"
         "                     [--max-output-bytes BYTES] [--max-concurrent N]\n"
         "                     [--max-timeout DURATION] [--secrets-dir DIR]\n"
         "                     [--sandbox bubblewrap|none] [--max-profile strict|standard]\n"
         "                     [--bwrap PATH] [--otlp-endpoint URL]\n"
         "       sandbox-agent --help | --version\n"
         "\n"
         "Serves sandbox.v1.SandboxExecService (Exec, Cancel). Each command runs in a fresh\n"
         "bubblewrap sandbox: profile 'standard' (network allowed) or 'strict' (no network).\n"
         "\n"
         "  --listen ADDR              HOST:PORT (port 0 picks a free port) or unix:PATH\n"
         "  --token-file FILE          require 'authorization: Bearer <token>', the token read\n"
         "                             from FILE\n"
         "  --tls-cert FILE            serve TLS with this certificate chain (PEM; needs\n"
         "                             --tls-key)\n"
         "  --tls-key FILE             the certificate's private key (PEM, unencrypted)\n"
         "  --client-ca FILE           require a client certificate signed by a CA in FILE\n"
         "                             (mTLS; needs --tls-cert)\n"
         "  --tls-reload-interval DURATION\n"
         "                             re-read the three TLS files this often, so they\n"
         "                             rotate without a restart (default 60s, at least 1s)\n"
         "  --allow-unauthenticated    serve without a token or client certificates\n"
         "                             (required when neither --token-file nor --client-ca)\n"
         "  --workspace DIR            working directory root (default: current directory)\n"
         "  --sandbox-id ID            id reported to clients (default: local-<hostname>)\n"
         "  --sandbox KIND             bubblewrap (default), or none: unconfined, for\n"
         "                             development only (profile 'none')\n"
         "  --max-profile PROFILE      the most permissive profile granted: standard (default)\n"
         "                             or strict; requests are clamped to it\n"
         "  --bwrap PATH               the bubblewrap executable (default: bwrap on PATH)\n"
         "  --reattach-grace DURATION  keep a command whose call was cancelled or lost running\n"
         "                             this long for a reattach, then kill it (default 30s;\n"
         "                             0 kills at once; Cancel always kills at once)\n"
         "  --resume-retention DURATION\n"
         "                             remember an ended exec this long for a reattach\n"
         "                             (default 60s)\n"
         "  --resume-buffer BYTES      output kept per exec for resuming, e.g. 8M (default 8M)\n"
         "  --max-output-bytes BYTES   per-stream output cap; a request's max_output_bytes is\n"
         "                             clamped to it, 0 there means this (default 8G); the\n"
         "                             rest is drained and counted, not sent\n"
         "  --max-concurrent N         commands running at once; one more new exec is refused\n"
         "                             with RESOURCE_EXHAUSTED, reattaches never (default 64)\n"
         "  --max-timeout DURATION     longest command timeout; a request's timeout_ms is\n"
         "                             clamped to it, 0 there means this (default 1h)\n"
         "  --secrets-dir DIR          secret store: an env value secret://NAME is the file\n"
         "                             DIR/NAME (one trailing newline stripped, at most\n"
         "                             64 KiB, no symlinks), redacted from the output as\n"
         "                             [REDACTED] (default: none, references are refused)\n"
         "  --otlp-endpoint URL        export a span per Exec call (and its setup and process)\n"
         "                             over OTLP/gRPC to URL, e.g. http://localhost:4317\n"
         "                             (default: OTEL_EXPORTER_OTLP_ENDPOINT; unset: none)\n"
         "  --help                     print this help\n"
         "  --version                  print the version\n"
         "\n"
         "Prints 'listening on ADDR' once ready. SIGTERM or SIGINT stops it gracefully.\n";
}

CommandLine parse_command_line(std::span<const std::string_view> args) {
  CommandLine result;
  std::optional<std::string> listen;
  std::optional<std::string> token_file;
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view flag = args[i];
    std::optional<std::string> inline_value;
    if (const std::size_t eq = flag.find('='); flag.starts_with("--") && eq != flag.npos) {
      inline_value = std::string(flag.substr(eq + 1));
      flag = flag.substr(0, eq);
    }
    auto value = [&]() -> std::string {
      if (inline_value) return *inline_value;
      if (i + 1 >= args.size()) throw CommandLineError(std::string(flag) + ": needs a value");
      return std::string(args[++i]);
    };
    auto no_value = [&] {
      if (inline_value) throw CommandLineError(std::string(flag) + ": takes no value");
    };
    if (flag == "--help" || flag == "-h") {
      no_value();
      result.action = CommandLine::Action::help;
      return result;
    } else if (flag == "--version") {
      no_value();
      result.action = CommandLine::Action::version;
      return result;
    } else if (flag == "--listen") {
      listen = value();
      if (listen->empty()) throw CommandLineError("--listen: must not be empty");
    } else if (flag == "--token-file") {
      token_file = value();
    } else if (flag == "--tls-cert") {
      result.options.tls_cert_file = non_empty(flag, value());
    } else if (flag == "--tls-key") {
      result.options.tls_key_file = non_empty(flag, value());
    } else if (flag == "--client-ca") {
      result.options.client_ca_file = non_empty(flag, value());
    } else if (flag == "--tls-reload-interval") {
      result.options.tls_reload_interval = positive_duration_flag(flag, value());
    } else if (flag == "--allow-unauthenticated") {
      no_value();
      result.options.allow_unauthenticated = true;
    } else if (flag == "--workspace") {
      result.options.workspace = value();
      if (result.options.workspace.empty())
        throw CommandLineError("--workspace: must not be empty");
    } else if (flag == "--sandbox") {
      result.options.sandbox = choice<SandboxKind>(
          flag, value(), {{"bubblewrap", SandboxKind::bubblewrap}, {"none", SandboxKind::none}});
    } else if (flag == "--max-profile") {
      result.options.max_profile = choice<Profile>(
          flag, value(), {{"strict", Profile::strict}, {"standard", Profile::standard}});
    } else if (flag == "--bwrap") {
      result.options.bwrap_path = value();
      if (result.options.bwrap_path.empty()) throw CommandLineError("--bwrap: must not be empty");
    } else if (flag == "--sandbox-id") {
      result.options.sandbox_id = value();
    } else if (flag == "--reattach-grace") {
      result.options.reattach_grace = duration_flag(flag, value());
    } else if (flag == "--resume-retention") {
      result.options.resume_retention = duration_flag(flag, value());
    } else if (flag == "--resume-buffer") {
      result.options.resume_buffer_bytes = byte_count_flag(flag, value());
    } else if (flag == "--max-output-bytes") {
      result.options.max_output_bytes = byte_count_flag(flag, value());
    } else if (flag == "--max-concurrent") {
      result.options.max_concurrent = count_flag(flag, value());
    } else if (flag == "--secrets-dir") {
      result.options.secrets_dir = value();
      if (result.options.secrets_dir.empty()) {
        throw CommandLineError("--secrets-dir: must not be empty");
      }
      std::error_code ec;
      if (!std::filesystem::is_directory(result.options.secrets_dir, ec)) {
        throw CommandLineError("--secrets-dir: '" + result.options.secrets_dir.string() +
                               "' is not an existing directory");
      }
    } else if (flag == "--otlp-endpoint") {
      result.otlp_endpoint = non_empty(flag, value());
    } else if (flag == "--max-timeout") {
      result.options.max_timeout = positive_duration_flag(flag, value());
    } else {
      throw CommandLineError(std::string(flag) + ": unknown flag (see --help)");
    }
  }
  if (!listen) throw CommandLineError("--listen: required");
  result.options.listen = *listen;
  if (token_file) result.options.token = read_token_file(*token_file);
  if (std::string violation = security_violation(result.options); !violation.empty()) {
    throw CommandLineError(violation);
  }
  return result;
}

}  // namespace sandbox::agent
