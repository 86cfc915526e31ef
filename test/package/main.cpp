// app ADDRESS: one exec against the agent at ADDRESS through the installed SDK; exit 0 when
// the command's output and exit code came back intact. Prints the version of the headers it
// was built with first (sandbox/version.hpp, generated at the SDK's configure).
//
// Built as traced_app (CONSUMER_TRACED), the runner traces through the installed
// sandbox::opentelemetry into an OTLP pipeline whose collector is not there: the exec must
// come back intact all the same, and its span is handed to the exporter.

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <iostream>
#include <sandbox/sandbox.hpp>
#ifdef CONSUMER_TRACED
#include <sandbox/opentelemetry.hpp>
#endif

asio::awaitable<bool> check(sandbox::RemoteRunner& runner) {
  auto result = co_await runner.exec({"sh", "-c", "echo package-ok; echo to-stderr >&2; exit 5"});
  std::cout << "exit code " << result.exit_code() << ", stdout " << result.stdout_data << "stderr "
            << result.stderr_data;
  co_return result.exit_code() == 5 && result.stdout_data == "package-ok\n" &&
      result.stderr_data == "to-stderr\n";
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: app ADDRESS\n";
    return 2;
  }
  std::cout << "sandbox-exec " SANDBOX_VERSION_STRING "\n";
  asio::io_context io;
  sandbox::RemoteRunnerConfig config;
  config.address = argv[1];
#ifdef CONSUMER_TRACED
  // Port 9 (discard) on loopback: nothing listens, so export fails quietly in the background.
  sandbox::otel::OtlpExport exporter("127.0.0.1:9", "package-consumer");
  config.tracer = exporter.tracer();
  std::cout << "tracing through sandbox::opentelemetry\n";
#endif
  sandbox::RemoteRunner runner(io.get_executor(), config);
  bool ok = false;
  asio::co_spawn(io, check(runner), [&](std::exception_ptr error, bool result) {
    if (error) std::rethrow_exception(error);
    ok = result;
  });
  io.run();
  return ok ? 0 : 1;
}
