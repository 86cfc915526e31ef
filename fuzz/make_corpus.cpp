// Writes the seed corpora of the fuzz targets: make_corpus DIR fills DIR/<target>/ with one
// small file per seed (input formats: the header comments of the targets). Deterministic, so
// re-running it over fuzz/corpus changes nothing unless a seed here changed.
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <utility>

#include "sandbox/v1/sandbox_exec.pb.h"

namespace {

namespace fs = std::filesystem;
using sandbox::v1::ExecRequest;
using sandbox::v1::ExecResponse;

std::string serialize(const google::protobuf::MessageLite& message) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);  // map order
    message.SerializeToCodedStream(&coded);
  }
  return bytes;
}

void write(const fs::path& dir, const std::string& name, const std::string& bytes) {
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary | std::ios::trunc) << bytes;
}

// ---------------------------------------------------------------- agent_request_validation_fuzz
// Header: options, amplification, stdin/signal (agent_request_validation_fuzz.cpp).
std::string header(unsigned char options, unsigned char amplification = 0,
                   unsigned char stdin_units = 0) {
  return {static_cast<char>(options), static_cast<char>(amplification),
          static_cast<char>(stdin_units)};
}

ExecRequest command(std::initializer_list<const char*> argv) {
  ExecRequest request;
  for (const char* arg : argv) request.add_command(arg);
  return request;
}

void request_seeds(const fs::path& dir) {
  const auto proto = [&](const std::string& name, unsigned char options, const ExecRequest& r) {
    write(dir, name, header(options, 0, 2) + serialize(r));
  };
  using namespace std::string_literals;
  const auto structured = [&](const std::string& name, const std::string& head,
                              const std::string& fields) { write(dir, name, head + fields); };

  proto("minimal", 0, command({"true"}));
  {
    ExecRequest r = command({"sh", "-c", "echo hi"});
    (*r.mutable_env())["FOO"] = "bar";
    r.set_workdir("sub");
    r.set_exec_id("0b3c8f4e-2a57-4c1e-9d0a-6f1e2b3c4d5e");
    proto("full", 0, r);
  }
  {
    ExecRequest r = command({"env"});
    (*r.mutable_env())["DB"] = "secret://db/password";
    (*r.mutable_env())["TOKEN"] = "secret://api_token";
    proto("secrets", 0x01, r);
  }
  for (const auto& [name, ref] : {std::pair{"secret-dotdot", "secret://../outside"},
                                  std::pair{"secret-symlink", "secret://link"},
                                  std::pair{"secret-missing", "secret://db/missing"}}) {
    ExecRequest r = command({"env"});
    (*r.mutable_env())["S"] = ref;
    proto(name, 0x01, r);
  }
  for (const auto& [name, workdir] :
       {std::pair{"workdir-dotdot", "../outside"}, std::pair{"workdir-link-out", "link-out"},
        std::pair{"workdir-link-in", "link-in/deeper"}, std::pair{"workdir-absolute", "/etc"}}) {
    ExecRequest r = command({"pwd"});
    r.set_workdir(workdir);
    proto(name, 0, r);
  }
  {
    ExecRequest r = command({"true"});
    r.set_profile("strict");
    r.mutable_policy()->set_network(sandbox::v1::SandboxPolicy::NETWORK_NONE);
    r.mutable_policy()->add_writable_roots(":workspace");
    r.mutable_policy()->add_writable_roots(":tmp");
    proto("bubblewrap-policy", 0x02, r);
    r.mutable_policy()->add_workspace_roots("/home");
    proto("bubblewrap-path-root", 0x02, r);
  }
  {
    ExecRequest r = command({"true"});
    r.set_exec_id("0123456789012345678901234567890123456789");
    proto("exec-id-long", 0, r);
  }
  // Structured: workdir, exec_id, profile, arguments, "", env entries.
  structured("structured", header(0x04), "sub\0exec-1\0\0ls\0-l\0\0FOO=bar\0HOME=/x"s);
  structured("structured-nul", header(0x0c), "\0\0\0ar\x01g\0\0K\x01=v"s);
  structured("structured-key-equals", header(0x14), "\0\0\0true\0\0A=B=c"s);
  structured("too-many-args", header(0x24, 0x09), "\0\0\0x"s);
  structured("too-many-env", header(0x24, 0x90), "\0\0\0true\0\0K=v"s);
  structured("stdin-too-big", header(0x44, 0x00, 129), "\0\0\0cat"s);
}

// ---------------------------------------------------------------- client_response_sequence_fuzz
// Each message as one length byte and its serialization.
std::string sequence(std::initializer_list<ExecResponse> messages) {
  std::string bytes;
  for (const ExecResponse& message : messages) {
    const std::string piece = serialize(message);
    if (piece.size() > 255) throw std::length_error("a seed message over 255 bytes");
    bytes += static_cast<char>(piece.size());
    bytes += piece;
  }
  return bytes;
}

ExecResponse started(const char* exec_id = "0b3c8f4e-2a57-4c1e-9d0a-6f1e2b3c4d5e") {
  ExecResponse m;
  m.mutable_started()->set_exec_id(exec_id);
  m.mutable_started()->set_sandbox_id("sandbox-1");
  m.mutable_started()->set_effective_profile("standard");
  m.mutable_started()->set_pid(4242);
  return m;
}

ExecResponse out(const char* data, std::uint64_t offset) {
  ExecResponse m;
  m.set_stdout(data);
  m.set_offset(offset);
  return m;
}

ExecResponse err(const char* data, std::uint64_t offset) {
  ExecResponse m;
  m.set_stderr(data);
  m.set_offset(offset);
  return m;
}

ExecResponse exit_with(int code, bool details = true) {
  ExecResponse m;
  m.set_exit_code(code);
  if (details) {
    m.mutable_exit()->set_stdout_bytes(6);
    m.mutable_exit()->set_stderr_bytes(5);
    m.mutable_exit()->set_duration_ms(12);
    m.mutable_exit()->set_effective_profile("standard");
  }
  return m;
}

void response_seeds(const fs::path& dir) {
  write(dir, "normal", sequence({started(), out("hello\n", 0), err("oops\n", 0), exit_with(3)}));
  write(dir, "exit-zero", sequence({started(), out("ok", 0), out("!\n", 2), exit_with(0)}));
  write(dir, "older-agent", sequence({out("a", 0), out("b", 0), exit_with(0, false)}));
  write(dir, "wrong-offset", sequence({started(), out("hello", 0), out("again", 3)}));
  write(dir, "after-exit", sequence({started(), exit_with(1), out("late", 0)}));
  write(dir, "second-started", sequence({started(), started()}));
  write(dir, "started-after-output", sequence({out("x", 0), started()}));
  write(dir, "no-event", sequence({started(), ExecResponse{}, exit_with(0)}));
  {
    ExecResponse killed = exit_with(137);
    killed.mutable_exit()->set_signal(9);
    killed.mutable_exit()->set_timed_out(true);
    killed.mutable_exit()->set_stdout_truncated(true);
    write(dir, "killed", sequence({started(""), err("e", 0), killed}));
  }
  write(dir, "unparseable-piece",
        std::string("\x03\xff\xff\xff", 4) + sequence({started(), exit_with(0)}));
}

// ---------------------------------------------------------------- client_exec_fuzz
// Attempt scripts separated by an empty piece, then the control byte (client_exec_fuzz.cpp).
constexpr unsigned char kStream = 0x80;    // also run stream()
constexpr unsigned char kHoldOpen = 0x40;  // keep the stream open after an exit
constexpr unsigned char kPushback0 = 0x10;
constexpr unsigned char kPushback2 = 0x20;
constexpr unsigned char kPushbackInvalid = 0x30;
constexpr unsigned char kUnavailable = 14;

std::string attempts(std::initializer_list<std::string> scripts, unsigned char control) {
  std::string bytes;
  bool first = true;
  for (const std::string& script : scripts) {
    if (!std::exchange(first, false)) bytes += '\0';
    bytes += script;
  }
  return bytes + static_cast<char>(control);
}

ExecResponse resumed() {
  ExecResponse m = started();
  m.mutable_started()->set_resumed(true);
  return m;
}

void exec_seeds(const fs::path& dir) {
  const std::string normal =
      sequence({started(), out("hello\n", 0), err("oops\n", 0), exit_with(3)});
  write(dir, "normal", attempts({normal}, 0));
  write(dir, "normal-stream", attempts({normal}, kStream));
  write(dir, "exit-then-internal", attempts({normal}, kStream | 13));
  write(dir, "hold-open-after-exit",
        attempts({sequence({started(), out("x", 0), exit_with(0)})}, kStream | kHoldOpen));
  write(dir, "after-exit", attempts({sequence({started(), exit_with(1), out("late", 0)})}, 0));
  const std::string partial = sequence({started(), out("hel", 0), err("e", 0)});
  write(dir, "missing-exit", attempts({partial}, kStream));
  write(dir, "internal", attempts({partial}, 13));
  write(dir, "cancelled-by-agent", attempts({partial}, kStream | 1));
  write(dir, "data-loss", attempts({partial}, 15));
  write(dir, "unavailable-no-retry", attempts({partial}, kStream | kUnavailable));
  const std::string rest = sequence({resumed(), out("lo\n", 3), exit_with(0)});
  write(dir, "retry-resume", attempts({partial, rest}, kStream));
  write(dir, "retry-pushback-0", attempts({partial, rest}, kPushback0));
  write(dir, "retry-pushback-invalid", attempts({partial, rest}, kStream | kPushbackInvalid));
  write(dir, "retry-twice",
        attempts({sequence({}), partial, sequence({resumed(), err("!", 1), exit_with(0)})},
                 kStream | kPushback2));
  write(dir, "retry-resent-from-zero",
        attempts({partial, sequence({resumed(), out("hello\n", 0), exit_with(0)})}, kStream));
  write(dir, "retry-fails-again",
        attempts({partial, sequence({resumed(), out("lo", 3)})}, kStream | kUnavailable));
  write(dir, "second-started", attempts({sequence({started(), started(), exit_with(0)})}, 0));
  write(dir, "older-agent",
        attempts({sequence({out("a", 0), out("b", 0), exit_with(0, false)})}, kStream));
  {
    ExecResponse killed = exit_with(137);
    killed.mutable_exit()->set_signal(9);
    killed.mutable_exit()->set_timed_out(true);
    killed.mutable_exit()->set_stdout_truncated(true);
    write(dir, "killed",
          attempts({sequence({started(), out("", 0), err("e", 0), killed})}, kStream));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s CORPUS_DIR (fuzz/corpus)\n", argv[0]);
    return 2;
  }
  const fs::path root = argv[1];
  request_seeds(root / "agent_request_validation_fuzz");
  response_seeds(root / "client_response_sequence_fuzz");
  exec_seeds(root / "client_exec_fuzz");
  return 0;
}
