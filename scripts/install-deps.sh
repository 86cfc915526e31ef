#!/usr/bin/env bash
# Installs the Debian 12 packages sandbox-exec-cpp needs to build, test and run, when any
# are missing. Root installs them; a user with password-less sudo installs them through
# `sudo -n`; anyone else gets the list and the command to run. Quiet: apt's output goes to
# build/logs/install-deps.log and is shown only on failure.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
packages=(cmake g++ make pkg-config libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev
  libssl-dev protobuf-compiler libasio-dev libgtest-dev libgmock-dev googletest libbenchmark-dev
  bubblewrap nodejs npm openssl ca-certificates clang libclang-rt-14-dev doxygen)

# Node may come from elsewhere (NodeSource's nodejs bundles npm and conflicts with Debian's
# npm package): for these two the command on PATH is what counts.
declare -A provides_command=([nodejs]=node [npm]=npm)

missing=()
for package in "${packages[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)"
  [[ "$status" == "install ok installed" ]] && continue
  command="${provides_command[$package]:-}"
  [[ -n $command ]] && command -v "$command" >/dev/null 2>&1 && continue
  missing+=("$package")
done
((${#missing[@]} == 0)) && exit 0

if ((EUID == 0)); then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  echo "install-deps: missing Debian packages: ${missing[*]}" >&2
  echo "install-deps: install them as root, then run this again:" >&2
  echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 1
fi

log_dir="$root/build/logs"
mkdir -p "$log_dir"
log="$log_dir/install-deps.log"
echo "install-deps: installing ${missing[*]} (log: $log)"
if ! {
  "${as_root[@]}" apt-get update &&
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y --no-install-recommends "${missing[@]}"
} >"$log" 2>&1 </dev/null; then
  tail -n 60 "$log" >&2
  echo "install-deps: apt-get failed; full log: $log" >&2
  exit 1
fi
