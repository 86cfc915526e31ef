# Tests of sandbox-agent (label `agent`). Included from test/CMakeLists.txt.
if(NOT TARGET sandbox_agent_core)
  return()
endif()

sandbox_add_test(agent_unit_tests
  SOURCES unit/agent_auth_test.cpp
          unit/agent_command_line_test.cpp
          unit/agent_output_log_test.cpp
          unit/agent_redactor_test.cpp
          unit/agent_request_validation_test.cpp
          unit/agent_secret_store_test.cpp
          unit/agent_workdir_test.cpp
  LIBS sandbox_agent_core sandbox_test_support
  LABELS agent unit)

sandbox_add_test(agent_exec_tests
  SOURCES integration/agent_exec_test.cpp integration/agent_limits_test.cpp
          integration/agent_reattach_test.cpp
          integration/agent_confinement_test.cpp integration/agent_secrets_test.cpp
  LIBS sandbox_agent_core sandbox_test_support
  LABELS agent integration)

# 1000 cancelled or timed-out execs, then a census of processes and descriptors: slow.
sandbox_add_test(agent_leak_tests
  SOURCES integration/agent_leak_test.cpp
  LIBS sandbox_agent_core sandbox_test_support
  LABELS slow agent integration)

sandbox_add_test(agent_binary_tests
  SOURCES integration/agent_binary_test.cpp
  LIBS sandbox_test_support
  LABELS agent integration)
