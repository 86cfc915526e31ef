# Sourced by the test scripts: `step NAME COMMAND...` runs COMMAND (errexit on, in a
# subshell) with its output in $log_dir/NAME.log, prints "NAME ok (Ns)", and on failure
# prints the log's tail and returns 1. The caller sets `log_dir` and `step_owner` (the
# script's name, for the failure line).

step() {
  local name="$1"
  shift
  local log="$log_dir/$name.log" begin=$SECONDS
  printf '%-23s ' "$name"
  # In the background so that errexit stays in force inside COMMAND (an `if` would turn
  # it off for everything the condition runs).
  ("$@") >"$log" 2>&1 </dev/null &
  if wait $!; then
    echo "ok ($((SECONDS - begin))s)"
  else
    echo "FAILED ($((SECONDS - begin))s)"
    tail -n 150 "$log"
    echo "${step_owner:-test}: step '$name' failed; full log: $log" >&2
    return 1
  fi
}
