#!/usr/bin/env bash
# Every check of sandbox-exec-cpp on a fresh Debian 12 machine: install what is missing,
# lint the contract, build presets `default`, `asan` and `client-shared`, build the API
# reference (doxygen, warnings are errors), run both CTest suites and the short soak,
# install the default and the client-shared build and build + run the out-of-tree consumer
# in test/package against each (CMake config and pkg-config), then the ThreadSanitizer job
# (scripts/tsan.sh) and the fuzzers (scripts/fuzz.sh).
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
  printf '%-23s ' "ctest-$preset"
  if ctest --preset "$preset" -j "$jobs" >"$log" 2>&1 </dev/null; then
    echo "ok ($((SECONDS - begin))s)"
    grep -E 'tests passed|Total Test time' "$log" | sed 's/^/    /'
    return 0
  fi
  echo "FAILED ($((SECONDS - begin))s)"
  sed -n '/tests passed/p; /The following tests FAILED/,$p' "$log" | sed 's/^/    /'
  # What failed the first time, which a passing rerun would otherwise hide.
  echo "    the failures as first reported:"
  grep -E -A8 ': Failure$|ERROR: [A-Za-z]+Sanitizer|runtime error:' "$log" | head -n 120 |
    sed 's/^/    /' || true
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

# The installed package, as users consume it. The default build (static client, agent, CLI)
# is installed into a temporary prefix and its tree checked; test/package is built against
# it through find_package(sandbox_exec CONFIG) (also a consumer of component opentelemetry)
# and through pkg-config. The client library
# alone (preset client-shared: shared, without agent, CLI, tests) is installed into a
# second prefix, its SONAME checked, and the same consumer built against it both ways. Each
# consumer runs one exec against an agent from the build tree.
package_test() {
  tmp="$(mktemp -d)"
  agent_pid=""
  # step() runs this in its own subshell: EXIT is the end of this function.
  trap '[[ -n $agent_pid ]] && kill "$agent_pid" 2>/dev/null; rm -rf "$tmp"' EXIT
  local version
  version="$(sed -n 's/^project(sandbox_exec VERSION \([0-9.]*\) .*/\1/p' "$root/CMakeLists.txt")"
  local full="$tmp/full" client="$tmp/client"
  cmake --install "$root/build/default" --prefix "$full"
  cmake --install "$root/build/client-shared" --prefix "$client"
  check_install_tree "$full" "$version" full
  check_install_tree "$client" "$version" client

  # The SONAME carries major.minor while the major is 0, else the major (SANDBOX_SOVERSION).
  local major="${version%%.*}" soname
  soname="libsandbox_client.so.$([[ $major == 0 ]] && echo "${version%.*}" || echo "$major")"
  readelf -d "$client/lib/libsandbox_client.so.$version" | tee "$tmp/dynamic" | grep SONAME
  grep -q "Library soname: \[$soname\]" "$tmp/dynamic"

  start_agent
  # find_package(sandbox_exec CONFIG): static and shared.
  local prefix
  for prefix in "$full" "$client"; do
    # CONSUMER_TRACED: component opentelemetry is required and traced_app built on it
    # (install-deps.sh installs opentelemetry-cpp, so both builds have the adapter).
    cmake -S "$root/test/package" -B "$prefix-cmake" -DCMAKE_PREFIX_PATH="$prefix" \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCONSUMER_TRACED=ON
    cmake --build "$prefix-cmake" -j "$jobs"
    run_consumer "$prefix-cmake/app" "$version"
    run_consumer "$prefix-cmake/traced_app" "$version"
  done
  readelf -d "$client-cmake/app" | grep NEEDED | grep -F "[$soname]"
  ldd "$client-cmake/app" | grep -F "$client/lib/$soname"

  # pkg-config: compiled once (the two prefixes hold the same headers), linked against each.
  PKG_CONFIG_PATH="$full/lib/pkgconfig" pkg-config --cflags --libs sandbox_exec
  # shellcheck disable=SC2046 # pkg-config's output is a list of words
  c++ -std=c++20 -O1 $(PKG_CONFIG_PATH="$full/lib/pkgconfig" pkg-config --cflags sandbox_exec) \
    -c "$root/test/package/main.cpp" -o "$tmp/main.o"
  # shellcheck disable=SC2046
  c++ "$tmp/main.o" -o "$tmp/app-pc-static" \
    $(PKG_CONFIG_PATH="$full/lib/pkgconfig" pkg-config --libs sandbox_exec)
  run_consumer "$tmp/app-pc-static" "$version"
  PKG_CONFIG_PATH="$client/lib/pkgconfig" pkg-config --libs sandbox_exec | tee "$tmp/libs"
  # A shared client brings its dependencies itself: none of them on the consumer's link line.
  if grep -q grpc "$tmp/libs"; then
    echo "pkg-config --libs of the shared client names grpc" >&2
    return 1
  fi
  # shellcheck disable=SC2046
  c++ "$tmp/main.o" -o "$tmp/app-pc-shared" -Wl,-rpath,"$client/lib" \
    $(PKG_CONFIG_PATH="$client/lib/pkgconfig" pkg-config --libs sandbox_exec)
  ldd "$tmp/app-pc-shared" | grep -F "$client/lib/$soname"
  run_consumer "$tmp/app-pc-shared" "$version"

  kill "$agent_pid"
  wait "$agent_pid" || true
  agent_pid=""
}

# check_install_tree PREFIX VERSION full|client: what `cmake --install` must have put there.
check_install_tree() {
  local prefix="$1" version="$2" kind="$3" path
  local expected=(include/sandbox/version.hpp lib/pkgconfig/sandbox_exec.pc
    lib/cmake/sandbox_exec/sandbox_execConfig.cmake
    lib/cmake/sandbox_exec/sandbox_execConfigVersion.cmake
    lib/cmake/sandbox_exec/sandbox_execTargets.cmake)
  for path in "$root"/include/sandbox/*.hpp "$root"/include/sandbox/detail/*.hpp; do
    expected+=("${path#"$root/"}")
  done
  if [[ $kind == full ]]; then
    expected+=(bin/sandbox-agent bin/sandbox-run lib/libsandbox_client.a)
  else
    expected+=("lib/libsandbox_client.so.$version")
  fi
  for path in "${expected[@]}"; do
    [[ -e $prefix/$path ]] || { echo "install tree $kind: $path missing" >&2; return 1; }
  done
  if [[ $kind == client && -e $prefix/bin ]]; then
    echo "install tree client: the client-only build installed programs: $(ls "$prefix/bin")" >&2
    return 1
  fi
  if [[ $kind == full ]]; then
    # The binaries print the version the SDK's header has: one source, project(VERSION).
    [[ "$("$prefix/bin/sandbox-run" --version)" == "sandbox-run $version" ]]
    [[ "$("$prefix/bin/sandbox-agent" --version)" == "sandbox-agent $version" ]]
  fi
  echo "install tree $kind: ${#expected[@]} expected files present"
}

# Starts sandbox-agent from the build tree on a unix socket in $tmp; sets agent_pid, address.
start_agent() {
  mkdir "$tmp/workspace"
  coproc agent {
    exec "$root/build/default/src/agent/sandbox-agent" --listen "unix:$tmp/agent.sock" \
      --allow-unauthenticated --workspace "$tmp/workspace" 2>&1
  }
  agent_pid=$agent_PID
  local line=""
  address=""
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
}

# run_consumer APP VERSION: one exec through the installed SDK, and the version it was built with.
run_consumer() {
  echo "$1:"
  "$1" "$address" | tee "$tmp/out"
  grep -qx "sandbox-exec $2" "$tmp/out"
}

step npm-ci npm_install || exit 1
step buf-lint-breaking buf_lint || exit 1
for preset in default asan client-shared; do
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
