# Runs the security suite with everything it and its agents log captured in one file, for
# scan_logs_for_secrets.cmake. -DBINARY=<test binary> -DLOG_DIR=<directory>.
# The environment (ctest's) sets GRPC_VERBOSITY=debug, so gRPC's own logs are in it too.
file(REMOVE_RECURSE "${LOG_DIR}")
file(MAKE_DIRECTORY "${LOG_DIR}")
set(ENV{SANDBOX_SENSITIVE_VALUES} "${LOG_DIR}/sensitive-values.txt")
execute_process(COMMAND "${BINARY}"
  OUTPUT_FILE "${LOG_DIR}/suite.log" ERROR_FILE "${LOG_DIR}/suite.log"
  RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  file(READ "${LOG_DIR}/suite.log" log)
  string(LENGTH "${log}" length)
  math(EXPR start "${length} - 20000")
  if(start LESS 0)
    set(start 0)
  endif()
  string(SUBSTRING "${log}" ${start} -1 tail)
  message(FATAL_ERROR "the security suite failed (${result}); the end of its log:\n${tail}")
endif()
