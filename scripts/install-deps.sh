#!/usr/bin/env bash
# Installs the Debian 12 packages sandbox-exec-cpp needs to build, test and run, when any
# are missing. Root installs them; a user with password-less sudo installs them through
# `sudo -n`; anyone else gets the list and the command to run. Quiet: apt's output goes to
# build/logs/install-deps.log and is shown only on failure.
#
# OpenTelemetry C++ (for sandbox::opentelemetry) is in Debian 12's bookworm-backports suite:
# on bookworm, when no apt source names that suite yet, it is added from the machine's own
# Debian source (its URI and keyring) as /etc/apt/sources.list.d/sandbox-exec-backports.sources,
# and those packages are installed with `-t bookworm-backports`.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
packages=(cmake g++ make pkg-config libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev
  libssl-dev protobuf-compiler libasio-dev libgtest-dev libgmock-dev googletest libbenchmark-dev
  bubblewrap nodejs npm openssl ca-certificates clang libclang-rt-14-dev doxygen)

# Node may come from elsewhere (NodeSource's nodejs bundles npm and conflicts with Debian's
# npm package): for these two the command on PATH is what counts.
declare -A provides_command=([nodejs]=node [npm]=npm)

# Installed from bookworm-backports on Debian 12 (from the default suite elsewhere).
backports_packages=(opentelemetry-cpp-dev libopentelemetry-proto-dev)
# shellcheck source=/dev/null
codename="$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")"
backports_file=/etc/apt/sources.list.d/sandbox-exec-backports.sources

missing=()
missing_backports=()
for package in "${backports_packages[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)"
  [[ "$status" == "install ok installed" ]] || missing_backports+=("$package")
done
for package in "${packages[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)"
  [[ "$status" == "install ok installed" ]] && continue
  command="${provides_command[$package]:-}"
  [[ -n $command ]] && command -v "$command" >/dev/null 2>&1 && continue
  missing+=("$package")
done
((${#missing[@]} + ${#missing_backports[@]} == 0)) && exit 0

# Prints the deb822 source of bookworm-backports, taken from the machine's Debian source:
# the URI and Signed-By of the stanza (debian.sources) or line (sources.list) that serves
# plain `bookworm`; deb.debian.org and Debian's keyring when there is none.
backports_source() {
  local uri="" keyring=""
  if [[ -r /etc/apt/sources.list.d/debian.sources ]]; then
    read -r uri keyring < <(awk '
      function flush() { if (suites ~ /(^| )bookworm( |$)/ && uri != "") { print uri, key; done = 1; exit } }
      /^[[:space:]]*$/ { flush(); uri = ""; key = ""; suites = ""; next }
      /^URIs:/ { uri = $2 } /^Suites:/ { $1 = ""; suites = $0 " " } /^Signed-By:/ { key = $2 }
      END { if (!done) flush() }' /etc/apt/sources.list.d/debian.sources) || true
  fi
  if [[ -z $uri && -r /etc/apt/sources.list ]]; then
    read -r uri keyring < <(sed -n -E \
      -e 's/^deb[[:space:]]+\[([^]]*signed-by=([^] ]+)[^]]*)\][[:space:]]+([^[:space:]]+)[[:space:]]+bookworm[[:space:]].*/\3 \2/p' \
      -e 's/^deb[[:space:]]+([^[:space:][]+)[[:space:]]+bookworm[[:space:]].*/\1/p' \
      /etc/apt/sources.list | head -n 1) || true
  fi
  printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: %s\n' \
    "${uri:-http://deb.debian.org/debian}" "${keyring:-/usr/share/keyrings/debian-archive-keyring.gpg}"
}

# Whether an apt source already serves bookworm-backports (ours, or the machine's own).
backports_enabled() {
  grep -rqsE '(^|[[:space:]])bookworm-backports([[:space:]]|$)' /etc/apt/sources.list \
    /etc/apt/sources.list.d/
}

need_backports_source=false
backports_target=()
if ((${#missing_backports[@]} > 0)) && [[ $codename == bookworm ]]; then
  backports_target=(-t bookworm-backports)
  backports_enabled || need_backports_source=true
fi

if ((EUID == 0)); then
  as_root=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  as_root=(sudo -n)
else
  echo "install-deps: missing Debian packages: ${missing[*]} ${missing_backports[*]}" >&2
  echo "install-deps: install them as root, then run this again:" >&2
  if $need_backports_source; then
    echo "  printf '$(backports_source | sed -z 's/\n/\\n/g')' > $backports_file" >&2
  fi
  echo "  apt-get update${missing[*]:+ && apt-get install -y --no-install-recommends ${missing[*]}}${missing_backports[*]:+ && apt-get install -y --no-install-recommends ${backports_target[*]} ${missing_backports[*]}}" >&2
  exit 1
fi

log_dir="$root/build/logs"
mkdir -p "$log_dir"
log="$log_dir/install-deps.log"
echo "install-deps: installing ${missing[*]} ${missing_backports[*]} (log: $log)"
if ! {
  if $need_backports_source; then
    echo "install-deps: adding $backports_file:"
    backports_source | tee /dev/stderr | "${as_root[@]}" tee "$backports_file" >/dev/null
  fi &&
    "${as_root[@]}" apt-get update &&
    if ((${#missing[@]} > 0)); then
      "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${missing[@]}"
    fi &&
    if ((${#missing_backports[@]} > 0)); then
      "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y --no-install-recommends "${backports_target[@]}" "${missing_backports[@]}"
    fi
} >"$log" 2>&1 </dev/null; then
  tail -n 60 "$log" >&2
  echo "install-deps: apt-get failed; full log: $log" >&2
  exit 1
fi
