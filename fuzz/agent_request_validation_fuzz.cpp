// Fuzzes the agent's request validation: validate_exec_request (command, env, sizes from
// common/request_limits, exec_id, workdir, confinement plan, secret references),
// validate_cancel_request and is_valid_secret_name.
//
// Input: three header bytes, then a payload.
//   byte 0, options: bit 0 a secret store; bit 1 a bubblewrap confinement (/bin/true stands
//     in for bwrap: probed once at startup, never run by the validation) instead of none;
//     bit 2 build the request from the payload's structure even if it parses; bit 3 in the
//     structured form, byte 0x01 stands for NUL; bit 4 an env entry splits at its last '='
//     (so a key may hold one) instead of its first; bits 5-7, the
//     amplification: 1 argv and env (byte 1), 2 stdin (byte 2), any other value none (it
//     is slow: one input in four at most).
//   byte 1, amplification to reach the limits with small inputs: the low nibble n repeats
//     the last argument until there are n * 512 (capped at 2 MiB of argv); the high nibble m
//     adds m * 128 env entries.
//   byte 2: stdin of byte * 32 KiB; the Cancel signal is (byte % 5) - 1.
//   payload: a serialized sandbox.v1.ExecRequest; if it does not parse (or bit 2), fields
//     split on NUL: workdir, exec_id, profile, the arguments up to an empty field, then env
//     entries KEY=VALUE.
//
// Properties (a broken one traps): nothing crashes; a rejection is INVALID_ARGUMENT or
// FAILED_PRECONDITION with a non-empty message that starts with the field it names, and
// carries no secret value and no env value; an acceptance implies the documented invariants
// of LaunchSpec and every rule of request_validation.hpp, recomputed here independently; the
// Cancel and secret-name rules agree with their reference definitions.
//
// The workspace and the secret store are the fixed tree fuzz/CMakeLists.txt makes at
// configure time (SANDBOX_FUZZ_FIXTURE); the validation only opens and reads in it.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "agent/confinement.hpp"
#include "agent/request_validation.hpp"
#include "agent/secret_store.hpp"
#include "agent/workdir.hpp"
#include "common/request_limits.hpp"
#include "sandbox/v1/sandbox_exec.pb.h"

namespace {

namespace fs = std::filesystem;
using sandbox::v1::CancelRequest;
using sandbox::v1::ExecRequest;

constexpr std::string_view kSecretScheme = "secret://";
// The fixture's secret values (fuzz/CMakeLists.txt), which no message may carry.
constexpr std::string_view kSecretValues[] = {"fuzz-secret-db-password-7f3a",
                                              "fuzz-secret-api-token-91c2"};

void require(bool condition, const char* property) {
  if (condition) return;
  std::fprintf(stderr, "agent_request_validation_fuzz: property broken: %s\n", property);
  __builtin_trap();
}

struct Fixture {
  fs::path workspace;
  std::unique_ptr<sandbox::agent::SecretStore> secrets;
  std::unique_ptr<sandbox::agent::Confinement> bubblewrap;
};

Fixture* fixture = nullptr;
bool verbose = false;  // SANDBOX_FUZZ_VERBOSE=1: print each outcome (to read a reproducer)

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

// The secret-name rule of secret_store.hpp, written differently: one pass over the bytes.
bool reference_secret_name(std::string_view name) {
  if (name.empty()) return false;
  std::string component;
  for (std::size_t i = 0; i <= name.size(); ++i) {
    if (i == name.size() || name[i] == '/') {
      if (component.empty() || component == "." || component == "..") return false;
      component.clear();
    } else if (name[i] == '\0') {
      return false;
    } else {
      component += name[i];
    }
  }
  return true;
}

bool reference_exec_id(std::string_view id) {
  if (id.size() > 36) return false;
  for (char c : id) {
    if (c <= ' ' || c >= 127) return false;
  }
  return true;
}

bool within_limits(const ExecRequest& request) {
  std::size_t argv_bytes = 0;
  for (const auto& arg : request.command()) argv_bytes += arg.size();
  std::size_t env_bytes = 0;
  for (const auto& [key, value] : request.env()) env_bytes += key.size() + value.size();
  return static_cast<std::size_t>(request.command_size()) <= sandbox::kMaxArgvEntries &&
         argv_bytes <= sandbox::kMaxArgvBytes && request.env().size() <= sandbox::kMaxEnvEntries &&
         env_bytes <= sandbox::kMaxEnvBytes && request.stdin().size() <= sandbox::kMaxStdinBytes;
}

std::vector<std::string> split_fields(std::string_view payload, bool escape_nul) {
  std::vector<std::string> fields(1);
  for (char c : payload) {
    if (c == '\0') {
      fields.emplace_back();
    } else {
      fields.back() += escape_nul && c == '\x01' ? '\0' : c;
    }
  }
  return fields;
}

void build_structured(std::string_view payload, std::uint8_t options, ExecRequest& request) {
  request.Clear();
  const std::vector<std::string> fields = split_fields(payload, options & 0x08);
  std::size_t i = 0;
  const auto next = [&]() -> const std::string* {
    return i < fields.size() ? &fields[i++] : nullptr;
  };
  if (const auto* workdir = next()) request.set_workdir(*workdir);
  if (const auto* exec_id = next()) request.set_exec_id(*exec_id);
  if (const auto* profile = next()) request.set_profile(*profile);
  while (const auto* arg = next()) {
    if (arg->empty()) break;
    request.add_command(*arg);
  }
  while (const auto* entry = next()) {
    const std::size_t eq = options & 0x10 ? entry->rfind('=') : entry->find('=');
    (*request.mutable_env())[entry->substr(0, eq)] =
        eq == std::string::npos ? std::string() : entry->substr(eq + 1);
  }
}

void amplify(std::uint8_t amplification, std::uint8_t stdin_units, ExecRequest& request) {
  if (const int argc = (amplification & 0x0f) * 512; argc > 0 && request.command_size() > 0) {
    const std::string last = request.command(request.command_size() - 1);
    std::size_t bytes = 0;
    for (const auto& arg : request.command()) bytes += arg.size();
    while (request.command_size() < argc && bytes <= (std::size_t{2} << 20)) {
      request.add_command(last);
      bytes += last.size();
    }
  }
  if (const int entries = (amplification >> 4) * 128; entries > 0) {
    const std::string value = request.env().empty() ? "v" : request.env().begin()->second;
    auto& env = *request.mutable_env();
    for (int n = 0; n < entries; ++n) env["FUZZ_" + std::to_string(n)] = value;
  }
  if (stdin_units > 0) request.set_stdin(std::string(std::size_t{stdin_units} * 32 * 1024, 'i'));
}

// Every field of `request` a message may quote (all but env values and stdin), joined.
std::string quotable_fields(const ExecRequest& request) {
  std::string text = request.workdir() + '\n' + request.exec_id() + '\n' + request.profile();
  for (const auto& arg : request.command()) text += '\n' + arg;
  for (const auto& [key, value] : request.env()) {
    text += '\n' + key;
    // A secret reference's name is quoted in lookup failures.
    if (std::string_view(value).starts_with(kSecretScheme)) text += '\n' + value.substr(9);
  }
  for (const auto& root : request.policy().workspace_roots()) text += '\n' + root;
  for (const auto& root : request.policy().writable_roots()) text += '\n' + root;
  return text;
}

void check_rejection(const grpc::Status& status, const ExecRequest& request,
                     std::string_view input) {
  require(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT ||
              status.error_code() == grpc::StatusCode::FAILED_PRECONDITION,
          "a rejection with an unexpected status code");
  const std::string& message = status.error_message();
  require(!message.empty(), "a rejection without a message");
  static constexpr std::string_view kFields[] = {"command:",
                                                 "command[",
                                                 "env:",
                                                 "env[",
                                                 "stdin:",
                                                 "exec_id:",
                                                 "workdir:",
                                                 "workspace:",
                                                 "profile:",
                                                 "policy:",
                                                 "policy.network:",
                                                 "policy.writable_roots:",
                                                 "policy.workspace_roots:",
                                                 "sandbox:"};
  bool names_field = false;
  for (std::string_view field : kFields) names_field = names_field || message.starts_with(field);
  if (!names_field) std::fprintf(stderr, "message: %s\n", message.c_str());
  require(names_field, "a rejection message that does not start with the field it names");
  for (std::string_view secret : kSecretValues) {
    if (!contains(input, secret)) {
      require(!contains(message, secret), "a rejection message carries a secret value");
    }
  }
  // An env value with a DEL byte is in no message template; quoting it would leak it.
  const std::string quotable = quotable_fields(request);
  for (const auto& [key, value] : request.env()) {
    if (contains(value, "\x7f") && !contains(quotable, value)) {
      require(!contains(message, value), "a rejection message carries an env value");
    }
  }
  if (message.starts_with("exec_id:")) {  // not a quoted value that holds the words
    require(!reference_exec_id(request.exec_id()), "a well-formed exec_id rejected");
  }
}

void check_acceptance(const sandbox::agent::LaunchSpec& spec, const ExecRequest& request,
                      bool with_secrets, bool confined) {
  require(request.command_size() > 0, "an empty command accepted");
  require(!request.command(0).empty(), "an empty command[0] accepted");
  require(static_cast<int>(spec.argv.size()) == request.command_size(), "argv is not command");
  for (int i = 0; i < request.command_size(); ++i) {
    require(spec.argv[i] == request.command(i), "argv is not command");
    require(!contains(spec.argv[i], std::string_view("\0", 1)), "an argument with NUL accepted");
  }
  require(within_limits(request), "a request over the limits accepted");
  require(sandbox::request_size_violation(request).empty(), "request_size_violation disagrees");
  require(reference_exec_id(request.exec_id()), "a malformed exec_id accepted");
  require(!contains(request.workdir(), std::string_view("\0", 1)) &&
              request.workdir().size() <= sandbox::agent::kMaxWorkdirBytes,
          "a malformed workdir accepted");

  const std::string& workspace = fixture->workspace.string();
  const std::string workdir = spec.workdir.string();
  require(workdir == workspace || workdir.starts_with(workspace + "/"),
          "a workdir outside the workspace accepted");
  require(static_cast<bool>(spec.workdir_fd), "an accepted workdir is not held open");
  require(confined ? spec.effective_profile == "strict" || spec.effective_profile == "standard"
                   : spec.effective_profile == "none" && spec.wrapper.empty(),
          "an unexpected effective profile");

  std::set<std::string_view> env(spec.env.begin(), spec.env.end());
  require(env.size() == spec.env.size(), "a duplicate env entry");
  std::set<std::string_view> keys;
  for (std::string_view entry : spec.env) {
    const std::size_t eq = entry.find('=');
    require(eq != std::string_view::npos && eq > 0, "an env entry without KEY=");
    require(!contains(entry, std::string_view("\0", 1)), "an env entry with NUL");
    require(keys.insert(entry.substr(0, eq)).second, "an env key twice");
  }
  for (std::string_view key : {"PATH", "HOME", "LANG"}) {
    require(keys.contains(key), "the base environment is missing a key");
  }
  for (const auto& [key, value] : request.env()) {
    if (!std::string_view(value).starts_with(kSecretScheme)) {
      require(env.contains(key + "=" + value), "a request env entry is missing");
      continue;
    }
    require(with_secrets, "a secret reference accepted without a secret store");
    const std::string name = value.substr(kSecretScheme.size());
    require(sandbox::agent::is_valid_secret_name(name), "a bad secret name resolved");
    bool resolved = false;
    for (const std::string& secret : spec.secrets) {
      resolved = resolved || env.contains(key + "=" + secret);
    }
    require(resolved, "a secret reference not replaced by its secret");
  }
}

void check_cancel(const ExecRequest& request, std::uint8_t signal_byte) {
  CancelRequest cancel;
  cancel.set_exec_id(request.exec_id());
  const int signal = signal_byte % 5 - 1;
  cancel.set_signal(static_cast<sandbox::v1::CancelSignal>(signal));
  const grpc::Status status = sandbox::agent::validate_cancel_request(cancel);
  const bool valid = !request.exec_id().empty() && reference_exec_id(request.exec_id()) &&
                     signal >= 0 && signal <= 2;
  require(status.ok() == valid, "validate_cancel_request disagrees with its rules");
  if (!status.ok()) {
    require(status.error_code() == grpc::StatusCode::INVALID_ARGUMENT &&
                (status.error_message().starts_with("exec_id: ") ||
                 status.error_message().starts_with("signal: ")),
            "a Cancel rejection that names no field");
  }
}

void check_secret_name(std::string_view name) {
  require(sandbox::agent::is_valid_secret_name(name) == reference_secret_name(name),
          "is_valid_secret_name disagrees with its rule");
  for (auto result : {sandbox::agent::SecretStore::Lookup::bad_name,
                      sandbox::agent::SecretStore::Lookup::not_found,
                      sandbox::agent::SecretStore::Lookup::unreadable}) {
    const std::string message = sandbox::agent::lookup_failure_message(name, result);
    require(message.starts_with("secret '" + std::string(name) + "'"),
            "a lookup failure message that does not quote the name");
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* root = std::getenv("SANDBOX_FUZZ_FIXTURE");
  const fs::path fixture_dir = root != nullptr ? root : SANDBOX_FUZZ_FIXTURE;
  std::error_code ec;
  verbose = std::getenv("SANDBOX_FUZZ_VERBOSE") != nullptr;
  fixture = new Fixture;
  fixture->workspace = fs::canonical(fixture_dir / "ws", ec);
  if (ec) {
    std::fprintf(stderr,
                 "agent_request_validation_fuzz: no fixture at %s (re-run cmake, or set "
                 "SANDBOX_FUZZ_FIXTURE)\n",
                 fixture_dir.c_str());
    std::exit(1);
  }
  fixture->secrets = std::make_unique<sandbox::agent::SecretStore>(fixture_dir / "secrets");
  fixture->bubblewrap = std::make_unique<sandbox::agent::Confinement>(
      sandbox::agent::SandboxKind::bubblewrap, "/bin/true", sandbox::agent::Profile::standard);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  const std::uint8_t options = data[0];
  const std::string_view payload(reinterpret_cast<const char*>(data + 3), size - 3);
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  ExecRequest request;
  if ((options & 0x04) ||
      !request.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
    build_structured(payload, options, request);
  }
  const int amplification = options >> 5;
  amplify(amplification == 1 ? data[1] : 0, amplification == 2 ? data[2] : 0, request);

  const bool with_secrets = options & 0x01;
  const bool confined = options & 0x02;
  sandbox::agent::LaunchSpec spec;
  const grpc::Status status = sandbox::agent::validate_exec_request(
      request, fixture->workspace, spec, with_secrets ? fixture->secrets.get() : nullptr,
      confined ? fixture->bubblewrap.get() : nullptr);
  if (verbose) {
    std::fprintf(stderr, "%s: %s\n", status.ok() ? "accepted" : "rejected",
                 status.ok() ? spec.workdir.c_str() : status.error_message().c_str());
  }
  if (status.ok()) {
    check_acceptance(spec, request, with_secrets, confined);
  } else {
    check_rejection(status, request, input);
  }

  check_cancel(request, data[2]);
  check_secret_name(request.workdir());
  for (const auto& [key, value] : request.env()) {
    if (std::string_view(value).starts_with(kSecretScheme)) {
      check_secret_name(std::string_view(value).substr(kSecretScheme.size()));
    }
  }
  return 0;
}
