# The OpenTelemetry adapter's tests (label `tracing`): the SDK's spans through
# sandbox::opentelemetry into opentelemetry-cpp's in-memory exporter (the agent binary
# behind a FaultProxy; the fake agent for the metadata), and over OTLP/gRPC to a receiver in
# the test. Only when the adapter is built (SANDBOX_WITH_OPENTELEMETRY).
if(NOT TARGET sandbox_opentelemetry OR NOT TARGET sandbox-agent OR NOT TARGET sandbox_test_support)
  return()
endif()

sandbox_add_test(tracing_tests
  SOURCES integration/tracing_test.cpp
  LIBS sandbox_opentelemetry sandbox_client sandbox_test_support sandbox_fakes
       opentelemetry-cpp::sdk opentelemetry-cpp::trace opentelemetry-cpp::in_memory_span_exporter
  LABELS tracing)

# The agent's SERVER, sandbox.setup and sandbox.process spans against the SDK's CLIENT span,
# the agent in-process tracing into the same in-memory pipeline.
sandbox_add_test(tracing_agent_tests
  SOURCES integration/tracing_agent_test.cpp
  LIBS sandbox_opentelemetry sandbox_client sandbox_agent_core sandbox_test_support sandbox_fakes
       opentelemetry-cpp::sdk opentelemetry-cpp::trace opentelemetry-cpp::in_memory_span_exporter
  LABELS tracing)

# The SDK exporting over OTLP/gRPC (OtlpExport) to a collector in the test, built from the
# OTLP protos of libopentelemetry-proto-dev: their code is in libopentelemetry_proto*.so,
# which the exporter links too (compiling the .pb.cc again would register them twice).
sandbox_add_test(tracing_otlp_tests
  SOURCES integration/otlp_export_test.cpp
  LIBS sandbox_opentelemetry sandbox_client sandbox_test_support sandbox_fakes
       opentelemetry-cpp::proto_grpc
  LABELS tracing)
