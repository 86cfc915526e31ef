# sandbox-run: flags and the --json format (unit), the real binaries end to end (integration).
# Included from test/CMakeLists.txt.

if(NOT TARGET sandbox-run)
  return()
endif()

sandbox_add_test(cli_options_test
  SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/unit/cli_options_test.cpp
          ${CMAKE_CURRENT_SOURCE_DIR}/unit/cli_base64_test.cpp
          ${CMAKE_CURRENT_SOURCE_DIR}/unit/cli_json_lines_test.cpp
          ${CMAKE_CURRENT_SOURCE_DIR}/unit/cli_run_output_test.cpp
  LIBS sandbox_cli_core
  LABELS cli unit)

if(TARGET sandbox-agent)
  sandbox_add_test(cli_run_test
    SOURCES ${CMAKE_CURRENT_SOURCE_DIR}/integration/cli_run_test.cpp
    LIBS sandbox_local_agent sandbox_cli_core sandbox_test_support
    LABELS cli integration)
  target_compile_definitions(cli_run_test PRIVATE
    SANDBOX_RUN_BINARY="$<TARGET_FILE:sandbox-run>"
    SANDBOX_AGENT_BINARY="$<TARGET_FILE:sandbox-agent>")
  # The tests run the binaries: build them with the test.
  add_dependencies(cli_run_test sandbox-run sandbox-agent)
endif()
