// The sandbox-agent command line.
#pragma once

#include <span>
#include <stdexcept>
#include <string>
#include <string_view>

#include "agent/agent_server.hpp"

namespace sandbox::agent {

/// What the command line asks for.
struct CommandLine {
  enum class Action { run, help, version };
  Action action = Action::run;
  AgentOptions options;  ///< meaningful for Action::run
  /// --otlp-endpoint: where to export spans over OTLP/gRPC; empty: the environment's
  /// OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT, else no tracing (main.cpp).
  std::string otlp_endpoint;
};

/// A command-line error; what() names the flag ("--token-file: cannot read ...").
class CommandLineError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Parses the arguments after the program name:
/// `--listen ADDR [--token-file FILE] [--allow-unauthenticated] [--tls-cert FILE
/// --tls-key FILE [--client-ca FILE]] [--tls-reload-interval DURATION] [--workspace DIR]
/// [--sandbox-id ID] [--reattach-grace DURATION] [--resume-retention DURATION]
/// [--resume-buffer BYTES] [--max-output-bytes BYTES] [--max-concurrent N]
/// [--max-timeout DURATION] [--secrets-dir DIR] [--otlp-endpoint URL]`, `--help`, `--version`;
/// `--flag=value` also works. Reads the token file (surrounding whitespace trimmed). Requires
/// --listen, and the authentication and TLS flags to make sense together (tls.hpp:
/// security_violation); TLS files are read by AgentServer. --secrets-dir must name an existing
/// directory.
/// @throws CommandLineError naming the offending flag.
CommandLine parse_command_line(std::span<const std::string_view> args);

/// The --help text.
std::string usage();

}  // namespace sandbox::agent
