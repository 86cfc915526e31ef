# cmake -DFUZZER=exe -DCORPUS=dir -DWORK=dir -DARGS=list -P run_fuzzer.cmake
# Runs FUZZER with ARGS over a fresh copy of CORPUS in WORK/corpus (where libFuzzer adds the
# inputs it finds), with crash artifacts in WORK/; the committed CORPUS is only read.
foreach(var FUZZER CORPUS WORK)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_fuzzer.cmake: -D${var}=... is required")
  endif()
endforeach()
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
file(COPY ${CORPUS}/ DESTINATION ${WORK}/corpus)
execute_process(COMMAND ${FUZZER} ${ARGS} -artifact_prefix=${WORK}/ ${WORK}/corpus
  RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "${FUZZER} failed (${result}); the failing input is in ${WORK}/, "
    "reproduce with: ${FUZZER} ${WORK}/crash-...")
endif()
