#include "cli/options.hpp"

#include <algorithm>
#include <charconv>
#include <limits>
#include <set>
#include <string>

namespace sandbox::cli {
namespace {

using namespace std::literals;

/// `"abc"` for an error message; control characters would break the one-line rule.
std::string quoted(std::string_view text) {
  std::string out = "\"";
  for (char c : text) out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  return out + '"';
}

struct Parser {
  ParsedArgs result;
  std::set<std::string_view> seen;

  bool fail(std::string message) {
    result.action = Action::error;
    result.error = std::move(message);
    return false;
  }

  /// Applies one flag that takes a value. False (with `result.error` set) when it breaks a
  /// rule.
  bool apply(std::string_view flag, std::string_view value) {
    Options& o = result.options;
    if (flag != "--env" && !seen.insert(flag).second) {
      return fail(std::string(flag) + ": given more than once");
    }
    auto non_empty = [&](std::string& field) {
      if (value.empty()) return fail(std::string(flag) + ": must not be empty");
      field = value;
      return true;
    };
    if (flag == "--address") return non_empty(o.address);
    if (flag == "--token-file") return non_empty(o.token_file);
    if (flag == "--ca") return non_empty(o.ca_file);
    if (flag == "--cert") return non_empty(o.cert_file);
    if (flag == "--key") return non_empty(o.key_file);
    if (flag == "--server-name") return non_empty(o.server_name);
    if (flag == "--profile") return non_empty(o.profile);
    if (flag == "--image") return non_empty(o.image);
    if (flag == "--workdir") return non_empty(o.workdir);
    if (flag == "--sandbox-id") return non_empty(o.sandbox_id);
    if (flag == "--env") {
      auto eq = value.find('=');
      if (eq == std::string_view::npos || eq == 0) {
        return fail("--env: expected KEY=VALUE with a non-empty KEY, got " + quoted(value));
      }
      o.env[std::string(value.substr(0, eq))] = std::string(value.substr(eq + 1));
      return true;
    }
    if (flag == "--protocol") {
      if (value == "v1") {
        o.protocol = AgentProtocol::v1;
      } else if (value == "legacy") {
        o.protocol = AgentProtocol::legacy;
      } else {
        return fail("--protocol: expected v1 or legacy, got " + quoted(value));
      }
      return true;
    }
    if (flag == "--timeout") {
      auto timeout = parse_duration(value);
      if (!timeout) {
        return fail(
            "--timeout: expected a positive duration such as 500ms, 30s, 5m, 1h or whole "
            "seconds, got " +
            quoted(value));
      }
      o.timeout = *timeout;
      return true;
    }
    if (flag == "--max-output") {
      auto bytes = parse_byte_count(value);
      if (!bytes) {
        return fail(
            "--max-output: expected a positive byte count such as 65536, 64K, 16M or 1G, got " +
            quoted(value));
      }
      o.max_output_bytes = *bytes;
      return true;
    }
    return fail(std::string(flag) + ": unknown flag (see --help)");
  }

  /// Rules between flags, checked once all were read.
  bool check_combination() {
    const Options& o = result.options;
    if (o.address.empty()) {
      // A private agent is unauthenticated and local: a token or TLS would mean the user
      // thinks they are talking to some other agent.
      if (!o.token_file.empty()) return fail("--token-file: requires --address");
      if (o.uses_tls()) return fail("--ca/--cert/--key/--server-name: require --address");
      if (o.protocol == AgentProtocol::legacy) {
        return fail("--protocol: legacy requires --address (the private agent speaks v1)");
      }
    }
    if (o.cert_file.empty() != o.key_file.empty()) {
      return fail("--cert/--key: mTLS needs both a certificate and its key");
    }
    return true;
  }
};

constexpr std::string_view value_flags[] = {
    "--address",     "--token-file", "--ca",         "--cert",    "--key",
    "--server-name", "--profile",    "--image",      "--workdir", "--sandbox-id",
    "--env",         "--timeout",    "--max-output", "--protocol"};

bool takes_value(std::string_view flag) {
  return std::find(std::begin(value_flags), std::end(value_flags), flag) != std::end(value_flags);
}

}  // namespace

ParsedArgs parse_args(std::span<const std::string_view> args) {
  Parser p;
  // --help / --version answer at once, even next to flags that would fail.
  for (auto arg : args) {
    if (arg == "--") break;
    if (arg == "--help" || arg == "-h") return {Action::help, {}, {}};
    if (arg == "--version") return {Action::version, {}, {}};
  }
  std::size_t i = 0;
  for (; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (arg == "--") break;
    if (!arg.starts_with("--")) {
      p.fail("unexpected argument " + quoted(arg) + ": put the command after '--'");
      return p.result;
    }
    if (arg == "--allow-insecure" || arg == "--stdin") {
      if (!p.seen.insert(arg).second) {
        p.fail(std::string(arg) + ": given more than once");
        return p.result;
      }
      (arg == "--stdin" ? p.result.options.forward_stdin : p.result.options.allow_insecure) = true;
      continue;
    }
    // Both `--flag value` and `--flag=value`.
    std::string_view flag = arg;
    std::optional<std::string_view> value;
    if (auto eq = arg.find('='); eq != std::string_view::npos) {
      flag = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    }
    if (!takes_value(flag)) {
      if (flag == "--allow-insecure" || flag == "--stdin") {
        p.fail(std::string(flag) + ": takes no value");
      } else {
        p.fail(std::string(flag) + ": unknown flag (see --help)");
      }
      return p.result;
    }
    if (!value) {
      if (i + 1 >= args.size() || args[i + 1] == "--") {
        p.fail(std::string(flag) + ": needs a value");
        return p.result;
      }
      value = args[++i];
    }
    if (!p.apply(flag, *value)) return p.result;
  }
  if (i >= args.size()) {
    p.fail("missing '--' before COMMAND (usage: sandbox-run [OPTIONS] -- COMMAND [ARG...])");
    return p.result;
  }
  if (i + 1 >= args.size()) {
    p.fail("missing COMMAND after '--'");
    return p.result;
  }
  if (args[i + 1].empty()) {
    p.fail("COMMAND: the program name must not be empty");
    return p.result;
  }
  if (!p.check_combination()) return p.result;
  p.result.options.argv.assign(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
  p.result.action = Action::run;
  return p.result;
}

std::string_view usage_text() noexcept {
  return R"(Usage: sandbox-run [OPTIONS] -- COMMAND [ARG...]

Runs COMMAND on a sandbox agent and streams its stdout and stderr here, byte for byte.

Agent:
  --address TARGET     agent to use (host:port, unix:/path, dns:///name:port); without it
                       a private local agent is started on a unix socket for this one run,
                       with the current directory as its workspace, and stopped afterwards
  --token-file FILE    bearer token (trailing newline ignored); else $SANDBOX_TOKEN.
                       Only sent to an --address agent
  --ca FILE            CA bundle the agent's certificate must chain to (enables TLS)
  --cert FILE          client certificate for mTLS (with --key)
  --key FILE           private key of --cert
  --server-name NAME   name to verify the agent's certificate against
  --allow-insecure     allow a token over a channel without TLS
  --protocol GEN       the agent's generation: v1 (default), or legacy for the first
                       deployed agents (/workflow.plugin.external.sandbox.SandboxExecService:
                       no --stdin, --timeout or reattach; retried only before sending)

Command:
  --profile NAME       requested security profile (strict, standard); the agent clamps it
  --image REF          OCI image reference
  --workdir DIR        working directory inside the sandbox
  --sandbox-id ID      the sandbox to target
  --env KEY=VALUE      environment entry; repeatable. secret://NAME values are passed
                       verbatim for the agent to resolve
  --stdin              send this process's stdin (read to its end first) to the command
  --timeout DURATION   command timeout: 500ms, 30s, 5m, 1h; a bare number is seconds
  --max-output BYTES   per-stream output cap: 65536, 64K, 16M, 1G; output past it is dropped

  --help               show this help
  --version            show the version

Exit status: the command's exit code; 124 if it timed out; 128+N if it was killed by
signal N (130/143 when sandbox-run itself is interrupted by SIGINT/SIGTERM); 125 for any
error of sandbox-run, the transport or the agent, reported as one line
"sandbox-run: error: <code>: <message>" on stderr.
)";
}

}  // namespace sandbox::cli
