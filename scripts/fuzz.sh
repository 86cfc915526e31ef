#!/usr/bin/env bash
# The libFuzzer targets of fuzz/: configure and build preset `fuzz` (clang, ASan + UBSan) in
# build/fuzz, then run each target for its fixed number of iterations over a copy of its
# committed corpus (CTest label `fuzz`). Quiet: one line on success; on failure the log of
# the failed step (build/logs/fuzz-<step>.log).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
log_dir="$root/build/logs"
started=$SECONDS

"$root/scripts/install-deps.sh"
mkdir -p "$log_dir"

# run NAME COMMAND...: COMMAND's output in build/logs/fuzz-NAME.log, its tail on failure.
run() {
  local name="$1"
  shift
  local log="$log_dir/fuzz-$name.log"
  if ! "$@" >"$log" 2>&1 </dev/null; then
    tail -n 150 "$log"
    echo "fuzz: step '$name' failed; full log: $log" >&2
    exit 1
  fi
}

run configure cmake --preset fuzz
run build cmake --build --preset fuzz -j 2
run ctest ctest --test-dir build/fuzz -L fuzz -j 2 --output-on-failure
echo "fuzz: passed in $((SECONDS - started))s"
