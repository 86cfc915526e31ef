#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: install what is missing, build (preset
# `default`), then run one command through a private local agent with sandbox-run and show
# its streamed output and exit status.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
"$root/scripts/install-deps.sh"

log_dir="$root/build/logs"
mkdir -p "$log_dir"
log="$log_dir/demo-build.log"
echo "demo: building sandbox-run and sandbox-agent (preset default; log: $log)"
if ! { cmake --preset default && cmake --build --preset default -j 2 --target sandbox-run sandbox-agent; } \
  >"$log" 2>&1; then
  tail -n 60 "$log" >&2
  echo "demo: build failed; full log: $log" >&2
  exit 1
fi

echo "\$ sandbox-run -- sh -c 'echo hello; echo oops >&2; exit 3'"
status=0
"$root/build/default/src/cli/sandbox-run" -- sh -c 'echo hello; echo oops >&2; exit 3' || status=$?
echo "exit status: $status"
# The demo worked when the command's own status came back.
[[ $status -eq 3 ]]
