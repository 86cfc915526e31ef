#!/bin/sh
# Issue 7's agent target: the reference agent streams a process's output at >= 0.8x the rate
# of piping the same process into `cat > /dev/null`. The process is `head -c SIZE /dev/zero`;
# the agent runs it unconfined (--sandbox none: bubblewrap's start-up is not the agent's
# streaming) on a unix socket, and sandbox-run, the SDK's stream() consumer, writes what
# arrives to /dev/null. Each side runs REPS times, alternating; medians.
#
#   bench/agent_vs_cat.sh BUILD_DIR [SIZE] [REPS]     e.g. build/default 1G 3
#
# Prints the runs and one JSON target row for `bench/ratios.py --extra FILE` on the last
# line (also written to $AGENT_VS_CAT_JSON when set).
set -eu
build=$1
size=${2:-1G}
reps=${3:-3}
agent="$build/src/agent/sandbox-agent"
run="$build/src/cli/sandbox-run"
dir=$(mktemp -d)
agent_pid=
cleanup() {
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
mkdir "$dir/ws"
mkfifo "$dir/log"
"$agent" --listen "unix:$dir/agent.sock" --allow-unauthenticated --sandbox none \
  --workspace "$dir/ws" --max-output-bytes 64G >"$dir/log" 2>&1 &
agent_pid=$!
exec 3<"$dir/log"
ready=no
while IFS= read -r line <&3; do # ends when the agent exits; it prints the line at once
  case $line in "listening on"*) ready=yes; break ;; esac
done
[ $ready = yes ] || { echo "the agent did not start" >&2; exit 1; }
cat <&3 >/dev/null & # its further log lines, so it never blocks on them

seconds() { # COMMAND... -> wall seconds of COMMAND, stdout to /dev/null
  start=$(date +%s.%N)
  "$@" >/dev/null
  end=$(date +%s.%N)
  echo "$end - $start" | bc -l
}
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

bytes=$(head -c "$size" /dev/zero | wc -c)
: >"$dir/cat"
: >"$dir/agent"
n=0
while [ $n -lt "$reps" ]; do
  seconds sh -c "head -c $size /dev/zero | cat" >>"$dir/cat"
  seconds "$run" --address "unix:$dir/agent.sock" --max-output "$size" -- head -c "$size" /dev/zero \
    >>"$dir/agent"
  n=$((n + 1))
done
cat_s=$(median <"$dir/cat")
agent_s=$(median <"$dir/agent")
cat_mbs=$(echo "$bytes / $cat_s / 1000000" | bc -l)
agent_mbs=$(echo "$bytes / $agent_s / 1000000" | bc -l)
ratio=$(echo "$agent_mbs / $cat_mbs" | bc -l)
printf 'cat runs (s):   %s\n' "$(tr '\n' ' ' <"$dir/cat")"
printf 'agent runs (s): %s\n' "$(tr '\n' ' ' <"$dir/agent")"
printf 'cat %.0f MB/s, agent + sandbox-run %.0f MB/s: %.2fx\n' "$cat_mbs" "$agent_mbs" "$ratio"
row=$(printf '[{"target": "agent throughput / cat (head -c %s /dev/zero)", "measured": "%.0f vs %.0f MB/s", "ratio": %.3f, "goal": ">= 0.8"}]' \
  "$size" "$agent_mbs" "$cat_mbs" "$ratio")
[ -n "${AGENT_VS_CAT_JSON:-}" ] && echo "$row" >"$AGENT_VS_CAT_JSON"
echo "$row"
