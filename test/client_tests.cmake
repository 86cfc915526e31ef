# The client SDK's tests: sans-io units, the SDK against a scripted fake agent, and the SDK
# against the real agent.
add_library(sandbox_fakes STATIC fakes/fake_agent.cpp)
target_link_libraries(sandbox_fakes PUBLIC sandbox_client sandbox_proto gRPC::grpc++ sandbox_asio GTest::gtest)
target_include_directories(sandbox_fakes PUBLIC ${CMAKE_CURRENT_SOURCE_DIR})

sandbox_add_test(client_unit_tests
  SOURCES unit/client_request_test.cpp unit/response_sequence_test.cpp unit/error_test.cpp
          unit/cancel_policy_test.cpp unit/retry_fsm_test.cpp unit/call_trace_test.cpp
  LIBS sandbox_client sandbox_proto sandbox_fakes
  LABELS unit)

# The concurrency core (completion wrappers, the stream's consumer side) from several threads
# with no gRPC server: the TSan job's (preset tsan) clean part; runs in every preset.
sandbox_add_test(client_concurrency_tests
  SOURCES unit/client_concurrency_test.cpp
  LIBS sandbox_client sandbox_proto
  LABELS concurrency)

sandbox_add_test(client_fake_agent_tests
  SOURCES integration/runner_fake_agent_test.cpp integration/stream_fake_agent_test.cpp
          integration/cancel_fake_agent_test.cpp integration/retry_fake_agent_test.cpp
          integration/legacy_agent_test.cpp
  LIBS sandbox_client sandbox_fakes
  LABELS client)

if(TARGET sandbox_agent_core AND TARGET sandbox_test_support)
  sandbox_add_test(client_agent_tests
    SOURCES integration/runner_agent_test.cpp integration/stream_agent_test.cpp
            integration/cancel_agent_test.cpp
    LIBS sandbox_client sandbox_agent_core sandbox_test_support sandbox_fakes
    LABELS client
    # ASan's default 256 MiB quarantine of freed chunks would be measured as client memory.
    ENV ASAN_OPTIONS=quarantine_size_mb=4:detect_leaks=1)
endif()

# The SDK's retries against the real agent behind a FaultProxy; the soak (label soak, out of
# the default presets) runs SANDBOX_SOAK_EXECS execs (default 2000) through random faults.
if(TARGET sandbox_agent_core AND TARGET sandbox_test_support)
  sandbox_add_test(client_retry_agent_tests
    SOURCES integration/retry_agent_test.cpp
    LIBS sandbox_client sandbox_agent_core sandbox_test_support sandbox_fakes
    LABELS client)
  sandbox_add_test(client_soak_tests
    SOURCES integration/soak_test.cpp
    LIBS sandbox_client sandbox_agent_core sandbox_test_support sandbox_fakes
    LABELS soak)
endif()

# Security end to end (real TLS on loopback, the agent binary); test/security_tests.cmake
# also runs it with its logs captured and scans them for leaked secrets.
if(TARGET sandbox-agent AND TARGET sandbox_test_support)
  sandbox_add_test(client_security_tests
    SOURCES integration/security_test.cpp
    LIBS sandbox_client sandbox_test_support sandbox_fakes
    LABELS security)
endif()

# The same suite once more with its logs captured (GRPC_VERBOSITY=debug), then scanned for
# every token, secret and env value it used.
if(TARGET client_security_tests)
  add_test(NAME security_logs_captured
    COMMAND ${CMAKE_COMMAND} -DBINARY=$<TARGET_FILE:client_security_tests>
            -DLOG_DIR=${CMAKE_CURRENT_BINARY_DIR}/security-logs
            -P ${CMAKE_CURRENT_SOURCE_DIR}/support/run_capturing_logs.cmake)
  set_tests_properties(security_logs_captured PROPERTIES
    FIXTURES_SETUP security_logs LABELS security ENVIRONMENT GRPC_VERBOSITY=debug TIMEOUT 300)
  add_test(NAME security_log_scan
    COMMAND ${CMAKE_COMMAND} -DLOG_DIR=${CMAKE_CURRENT_BINARY_DIR}/security-logs
            -P ${CMAKE_CURRENT_SOURCE_DIR}/support/scan_logs_for_secrets.cmake)
  set_tests_properties(security_log_scan PROPERTIES FIXTURES_REQUIRED security_logs LABELS security)
endif()
