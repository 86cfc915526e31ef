// Runs one command under a span of the program's own and exports both that span and the
// SDK's CLIENT span over OTLP/gRPC (sandbox::otel::OtlpExport), then prints the trace id to
// look up in the collector's backend (Jaeger, Tempo...).
//
//   OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 traced_exec [ADDRESS]
//
// Without the variable it exports to OTel's default, http://localhost:4317; a collector
// that is not there loses the spans (opentelemetry-cpp logs the failed export), the exec
// runs all the same. Without ADDRESS, a private local agent is started for the run.

#include <asio/io_context.hpp>
#include <array>
#include <iostream>
#include <string>
#include <system_error>

#include "example_agent.hpp"
#include "opentelemetry/trace/scope.h"
#include "sandbox/opentelemetry.hpp"
#include "sandbox/sandbox.hpp"

int main(int argc, char** argv) {
  try {
    std::string endpoint = sandbox::otel::otlp_endpoint_from_environment();
    if (endpoint.empty()) endpoint = "http://localhost:4317";
    // Flushes the spans when it goes out of scope, after the runner.
    sandbox::otel::OtlpExport otlp(endpoint, "traced-exec-example");

    sandbox::RemoteRunnerConfig config;
    config.tracer = otlp.tracer();
    auto agent = example::use_agent(argc > 1 ? argv[1] : nullptr, config);
    asio::io_context io;
    sandbox::RemoteRunner runner(io.get_executor(), config);

    // The program's own span, from the same pipeline. The SDK's span becomes its child
    // because it is active (Scope) on this thread when exec() begins the call.
    auto span = otlp.provider()->GetTracer("traced-exec-example")->StartSpan("run tests");
    int status = 1;
    {
      opentelemetry::trace::Scope active(span);
      runner.exec(sandbox::Command{"sh", "-c", "echo traced; exit 0"},
                  [&status](std::error_code ec, sandbox::ExecResult result) {
                    if (ec) {
                      std::cerr << "traced_exec: " << sandbox::error_name(ec) << ": "
                                << result.error_message << "\n";
                      return;
                    }
                    std::cout << "stdout:    " << result.stdout_data
                              << "exit code: " << result.exit_code() << "\n";
                    status = result.exit_code();
                  });
    }
    io.run();
    span->End();

    std::array<char, 32> trace_id{};
    span->GetContext().trace_id().ToLowerBase16(trace_id);
    std::cout << "trace id:  " << std::string(trace_id.data(), trace_id.size()) << "\n"
              << "exported to " << endpoint << "\n";
    return status;
  } catch (const std::exception& e) {
    return example::report("traced_exec", e);
  }
}
