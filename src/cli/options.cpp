#include "cli/options.hpp"

#include <array>
#include <charconv>
#include <limits>
#include <optional>
#include <set>
#include <string>

namespace sandbox::cli {
namespace {

using namespace std::literals;

/// `text` for an error message: control characters would break the one-line rule (or
/// reach a terminal as escape sequences).
std::string printable(std::string_view text) {
  std::string out;
  for (char c : text) out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  return out;
}

/// `"abc"` for an error message.
std::string quoted(std::string_view text) { return '"' + printable(text) + '"'; }

/// How a flag is read.
enum class FlagKind {
  help,     ///< answers at once: `Action::help`
  version,  ///< answers at once: `Action::version`
  boolean,  ///< takes no value
  value,    ///< `--flag VALUE` or `--flag=VALUE`
};

struct Flag {
  std::string_view name;
  FlagKind kind;
};

/// The one list of flags: `parse_args` accepts exactly these, `accepted_flags()` lists them.
constexpr Flag flags[] = {
    {"--help", FlagKind::help},         {"-h", FlagKind::help},
    {"--version", FlagKind::version},   {"--address", FlagKind::value},
    {"--token-file", FlagKind::value},  {"--ca", FlagKind::value},
    {"--cert", FlagKind::value},        {"--key", FlagKind::value},
    {"--server-name", FlagKind::value}, {"--allow-insecure", FlagKind::boolean},
    {"--profile", FlagKind::value},     {"--image", FlagKind::value},
    {"--workdir", FlagKind::value},     {"--sandbox-id", FlagKind::value},
    {"--env", FlagKind::value},         {"--stdin", FlagKind::boolean},
    {"--timeout", FlagKind::value},     {"--max-output", FlagKind::value},
    {"--json", FlagKind::boolean},      {"--protocol", FlagKind::value},
};

constexpr auto flag_names = [] {
  std::array<std::string_view, std::size(flags)> names{};
  for (std::size_t i = 0; i < names.size(); ++i) names[i] = flags[i].name;
  return names;
}();

std::optional<FlagKind> kind_of(std::string_view name) {
  for (const Flag& flag : flags) {
    if (flag.name == name) return flag.kind;
  }
  return std::nullopt;
}

struct Parser {
  ParsedArgs result;
  std::set<std::string_view> seen;

  bool fail(std::string message) {
    result.action = Action::error;
    result.error = std::move(message);
    return false;
  }

  bool once(std::string_view flag) {
    if (seen.insert(flag).second) return true;
    return fail(std::string(flag) + ": given more than once");
  }

  /// Applies one flag that takes no value.
  bool apply_boolean(std::string_view flag) {
    Options& o = result.options;
    if (!once(flag)) return false;
    if (flag == "--allow-insecure") return o.allow_insecure = true;
    if (flag == "--stdin") return o.forward_stdin = true;
    if (flag == "--json") return o.json = true;
    return fail(std::string(flag) + ": unknown flag (see --help)");
  }

  /// Applies one flag that takes a value. False (with `result.error` set) when it breaks a
  /// rule.
  bool apply(std::string_view flag, std::string_view value) {
    Options& o = result.options;
    if (flag != "--env" && !once(flag)) return false;
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

  /// Rules between flags, checked once all were read. Each error names a flag the user
  /// gave.
  bool check_combination() {
    const Options& o = result.options;
    if (o.address.empty()) {
      // A private agent is unauthenticated and local: a token or TLS would mean the user
      // thinks they are talking to some other agent.
      for (auto flag : {"--token-file", "--ca", "--cert", "--key", "--server-name"}) {
        if (seen.contains(flag)) return fail(std::string(flag) + ": requires --address");
      }
      if (o.protocol == AgentProtocol::legacy) {
        return fail("--protocol: legacy requires --address (the private agent speaks v1)");
      }
    }
    if (o.cert_file.empty() != o.key_file.empty()) {
      return fail(o.cert_file.empty() ? "--key: needs --cert, the certificate it belongs to"
                                      : "--cert: needs --key, its private key, for mTLS");
    }
    return true;
  }
};

}  // namespace

ParsedArgs parse_args(std::span<const std::string_view> args) {
  Parser p;
  // Noted before anything can fail, so that every error can be a JSON line under --json.
  for (auto arg : args) {
    if (arg == "--") break;
    if (arg == "--json") p.result.options.json = true;
  }
  // --help / --version answer at once, even next to flags that would fail.
  for (auto arg : args) {
    if (arg == "--") break;
    auto kind = kind_of(arg);
    if (kind == FlagKind::help) return {Action::help, {}, {}};
    if (kind == FlagKind::version) return {Action::version, {}, {}};
  }
  std::size_t i = 0;
  for (; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (arg == "--") break;
    if (arg.size() > 1 && arg.starts_with('-') && !arg.starts_with("--")) {
      p.fail(printable(arg) + ": unknown flag (see --help)");
      return p.result;
    }
    if (!arg.starts_with("--")) {
      p.fail("unexpected argument " + quoted(arg) + ": put the command after '--'");
      return p.result;
    }
    // Both `--flag value` and `--flag=value`.
    std::string_view flag = arg;
    std::optional<std::string_view> value;
    if (auto eq = arg.find('='); eq != std::string_view::npos) {
      flag = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    }
    auto kind = kind_of(flag);
    if (!kind) {
      p.fail(printable(flag) + ": unknown flag (see --help)");
      return p.result;
    }
    if (*kind != FlagKind::value) {
      // `--help=x` included: only the bare spellings answer at once.
      if (value) {
        p.fail(std::string(flag) + ": takes no value");
        return p.result;
      }
      if (!p.apply_boolean(flag)) return p.result;
      continue;
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

std::span<const std::string_view> accepted_flags() noexcept { return flag_names; }

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

Output:
  --json               write JSON lines on stdout (below) instead of the command's raw
                       stdout and stderr; stderr then carries only sandbox-run's error line
  --help               show this help
  -h                   the same as --help
  --version            show the version

Exit status: the command's exit code; 124 if it timed out; 128+N if it was killed by
signal N (130/143 when sandbox-run itself is interrupted by SIGINT/SIGTERM); 125 for any
error of sandbox-run, the transport or the agent, reported as one line
"sandbox-run: error: <code>: <message>" on stderr. --json does not change it.

--json: one JSON object per line, "event" first; N is an integer, B true or false, S a
string (bytes that are not UTF-8 become U+FFFD):
  {"event":"started","exec_id":S,"sandbox_id":S,"effective_profile":S}
      once, before the first stdout/stderr line, or before the exit line if there was
      no output (sandbox_id, effective_profile: "" from an agent that sends no started)
  {"event":"stdout","offset":N,"data":S}  and  {"event":"stderr","offset":N,"data":S}
      one per chunk, in arrival order; data: the bytes in base64 (RFC 4648 standard
      alphabet, "=" padded); offset: where they start in their stream
  {"event":"exit","exit_code":N,"signal":N,"timed_out":B,"stdout_truncated":B,
   "stderr_truncated":B,"stdout_total":N,"stderr_total":N,"duration_ms":N}
      the last line when the command ended; totals count what the command wrote, also
      past --max-output
  {"event":"error","code":S,"message":S}
      the last line on an error (exit 125): code and message as in the stderr line
A run that failed may have no started line; one interrupted by a signal, or whose stdout
went away, ends without an exit or error line.
)";
}

}  // namespace sandbox::cli
