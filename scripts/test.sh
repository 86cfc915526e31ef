#!/usr/bin/env bash
# Every check of sandbox-exec-cpp on a fresh Debian 12 machine: install what is missing,
# lint the contract, build presets `default` and `asan`, build the API reference (doxygen,
# warnings are errors), run both CTest suites and the short soak, install the default build
# and build + run the out-of-tree consumer in test/package against it, then the
# ThreadSanitizer job (scripts/tsan.sh) and the fuzzers (scripts/fuzz.sh).
# Quiet: each step logs to build/logs/<step>.log, shown (tail) when the step fails.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
log_dir="$root/build/logs"
jobs=2
started=$SECONDS

"$root/scripts/install-deps.sh"
mkdir -p "$log_dir"

step_owner=test
# shellcheck source=scripts/step.sh
source "$root/scripts/step.sh"

# A CTest suite: its summary whatever the outcome; on failure, the failed tests run once
# more on their own with their output shown (CI keeps only this script's output).
ctest_step() {
  local preset="$1"
  local log="$log_dir/ctest-$preset.log" begin=$SECONDS
  printf '%-20s' "ctest-$preset"
  if ctest --preset "$preset" -j "$jobs" >"$log" 2>&1 </dev/null; then
    echo "ok ($((SECONDS - begin))s)"
    grep -E 'tests passed|Total Test time' "$log" | sed 's/^/    /'
    return 0
  fi
  echo "FAILED ($((SECONDS - begin))s)"
  sed -n '/tests passed/p; /The following tests FAILED/,$p' "$log" | sed 's/^/    /'
  echo "    rerunning the failed tests (full log: $log):"
  ctest --preset "$preset" --rerun-failed --output-on-failure </dev/null 2>&1 | tail -n 200 |
    sed 's/^/    /' || true
  return 1
}

# npm ci, as the lock file demands. Where the registry does not serve all of @bufbuild/buf's
# per-platform optional packages (the lock has entries only for the Linux ones), npm ci
# refuses the lock as out of sync; then install the same locked versions with
# `npm install --no-save` and prove the lock file was left as it is.
npm_install() {
  npm ci --no-audit --no-fund && return 0
  echo "npm ci refused the lock file; installing the locked versions with npm install --no-save"
  local lock_copy
  lock_copy="$(mktemp)"
  cp "$root/package-lock.json" "$lock_copy"
  npm install --no-save --no-audit --no-fund
  cmp "$lock_copy" "$root/package-lock.json"
  rm -f "$lock_copy"
}

buf_lint() {
  cd "$root/proto" # a subshell of step()
  "$root/node_modules/.bin/buf" lint
  # The wire contract as first published (the commit that added it) may only be extended.
  local first
  first="$(git -C "$root" log --format=%H --diff-filter=A -- proto/sandbox/v1/sandbox_exec.proto | tail -n 1)"
  "$root/node_modules/.bin/buf" breaking --against "$root/.git#ref=$first,subdir=proto"
}

# The consumer: install into a temporary prefix, build test/package against it with
# find_package(sandbox_exec CONFIG), run it against an agent from the build tree.
package_test() {
  tmp="$(mktemp -d)"
  agent_pid=""
  # step() runs this in its own subshell: EXIT is the end of this function.
  trap '[[ -n $agent_pid ]] && kill "$agent_pid" 2>/dev/null; rm -rf "$tmp"' EXIT
  cmake --install "$root/build/default" --prefix "$tmp/prefix"
  cmake -S "$root/test/package" -B "$tmp/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo
  cmake --build "$tmp/build" -j "$jobs"

  mkdir "$tmp/workspace"
  coproc agent {
    exec "$root/build/default/src/agent/sandbox-agent" --listen "unix:$tmp/agent.sock" \
      --allow-unauthenticated --workspace "$tmp/workspace" 2>&1
  }
  agent_pid=$agent_PID
  local line="" address=""
  # Bounded: each read waits at most 20 s; the agent prints a few lines at most before it.
  while IFS= read -r -t 20 -u "${agent[0]}" line; do
    echo "agent: $line"
    if [[ $line == "listening on "* ]]; then
      address="${line#listening on }"
      break
    fi
  done
  if [[ -z $address ]]; then
    echo "the agent did not print 'listening on ADDR' within 20 s" >&2
    return 1
  fi
  "$tmp/build/app" "$address"
  kill "$agent_pid"
  wait "$agent_pid" || true
  agent_pid=""
}

step npm-ci npm_install || exit 1
step buf-lint-breaking buf_lint || exit 1
for preset in default asan; do
  step "configure-$preset" cmake --preset "$preset" || exit 1
  step "build-$preset" cmake --build --preset "$preset" -j "$jobs" || exit 1
done
status=0
# The API reference: any doxygen warning (a public symbol without a doc comment) fails it.
step docs cmake --build --preset default --target docs || status=1
ctest_step default || status=1
ctest_step asan || status=1
step soak ctest --preset soak --verbose || status=1
grep -ho 'soak: execs=.*' "$log_dir/soak.log" | sed 's/^/    /' || true
step package package_test || status=1
step tsan "$root/scripts/tsan.sh" || status=1
sed -n 's/^\(ctest-tsan-grpc.*\)/    \1/p' "$log_dir/tsan.log" || true
step fuzz "$root/scripts/fuzz.sh" || status=1
echo "test: $( ((status == 0)) && echo passed || echo FAILED ) in $((SECONDS - started))s"
exit "$status"
