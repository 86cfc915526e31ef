#!/usr/bin/env bash
# The ThreadSanitizer job: configure + build preset `tsan` (the client SDK's tests only,
# in build/tsan), then
#   1. ctest --preset tsan: client_unit_tests + client_concurrency_tests, no gRPC server, no
#      suppressions. Must be clean: a race here fails the script.
#   2. ctest --preset tsan-grpc: client_fake_agent_tests against the in-process fake agent,
#      with test/tsan.supp. Best effort (Debian's gRPC is not TSan-built; see
#      docs/testing.md): its outcome is reported, never fails the script.
# Quiet: each step logs to build/tsan/logs/<step>.log, shown (tail) when a step fails.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
log_dir="$root/build/tsan/logs"
jobs=2
started=$SECONDS

step_owner=tsan
# shellcheck source=scripts/step.sh
source "$root/scripts/step.sh"

# The distinct races of a log, most frequent first: "count  location of the access".
races() {
  grep -h 'SUMMARY: ThreadSanitizer' "$@" | sed 's/^SUMMARY: ThreadSanitizer: //' |
    sort | uniq -c | sort -rn
}

mkdir -p "$log_dir"
step configure-tsan cmake --preset tsan || exit 1
step build-tsan cmake --build --preset tsan -j "$jobs" || exit 1

status=0
log="$log_dir/ctest-tsan.log"
begin=$SECONDS
printf '%-23s ' ctest-tsan
if ctest --preset tsan -j "$jobs" >"$log" 2>&1 </dev/null; then
  echo "ok ($((SECONDS - begin))s): $(grep -E 'tests passed' "$log")"
else
  status=1
  echo "FAILED ($((SECONDS - begin))s)"
  sed -n '/tests passed/p; /The following tests FAILED/,$p' "$log" | sed 's/^/    /'
  races "$log" | head -n 20 | sed 's/^/    /'
  echo "    full log (each failed test's output, TSan reports included): $log"
fi

log="$log_dir/ctest-tsan-grpc.log"
begin=$SECONDS
printf '%-23s ' ctest-tsan-grpc
if ctest --preset tsan-grpc -j "$jobs" >"$log" 2>&1 </dev/null; then
  echo "ok ($((SECONDS - begin))s): $(grep -E 'tests passed' "$log")"
else
  echo "best effort, not clean ($((SECONDS - begin))s): $(grep -E 'tests passed' "$log" || echo 'no summary')"
  echo "    races left after test/tsan.supp (first report of each failed test):"
  races "$log" | head -n 10 | sed 's/^/    /'
  echo "    full log: $log"
fi

echo "tsan: core $( ((status == 0)) && echo clean || echo FAILED ) in $((SECONDS - started))s"
exit "$status"
