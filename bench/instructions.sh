#!/bin/sh
# Client instructions per unit of work under callgrind: a measure that a loaded machine does
# not move (wall clock and CPU time do, by tens of percent, on 2 shared cores).
#
#   bench/instructions.sh BIN [ROW_REGEX...]
#   bench/instructions.sh --tracing BIN
#
# Each row runs twice in its own process (--short sizes, --separate_server so the server's
# instructions land in another file), with 2 and then 6 iterations; the difference of the
# client process's instruction counts, divided by the work of 4 iterations, is the cost of
# one exec (tiny, concurrent64: 64 execs per iteration) or one MiB (bulk, 8 MiB per
# iteration). Connection set-up and warm-up cancel out.
#
# --tracing: what tracing costs an exec when no tracer is set (issue 6's "zero cost when
# unused"): the instructions of the SDK's tracing functions (CallTrace, trace_*) inclusive,
# per exec of tiny_exec/sdk_exec, beside the exec's whole count; and the whole count with a
# no-op tracer (tiny_exec/sdk_exec_noop_tracer).
set -eu
tracing=no
if [ "$1" = --tracing ]; then
  tracing=yes
  shift
fi
bin=$1
shift
[ $# -gt 0 ] || set -- 'tiny_exec/raw_callback/' 'tiny_exec/sdk_exec/' 'tiny_exec/sdk_stream/' \
  'concurrent64_tiny/raw_callback/' 'concurrent64_tiny/sdk_exec/' 'concurrent64_tiny/sdk_stream/' \
  'bulk_4KiB_chunks/raw_callback/' 'bulk_4KiB_chunks/sdk_stream/' \
  'bulk_64KiB_chunks/raw_callback/' 'bulk_64KiB_chunks/sdk_stream/'
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
client_ir() {  # ROW ITERATIONS -> instructions of the client process
  rm -f "$dir"/cg.*
  valgrind --tool=callgrind --callgrind-out-file="$dir/cg.%p" --trace-children=no \
    "$bin" --short --separate_server --iterations="$2" --benchmark_filter="$1" >/dev/null 2>&1 &
  pid=$!
  wait $pid
  # The client is the process valgrind started; the forked server writes its own file.
  sed -n 's/^summary: //p' "$dir/cg.$pid"
}
tracing_ir() {  # ITERATIONS -> instructions inside the SDK's tracing functions, untraced exec
  rm -f "$dir"/cg.*
  valgrind --tool=callgrind --callgrind-out-file="$dir/cg.%p" --trace-children=no \
    "$bin" --short --separate_server --iterations="$1" --benchmark_filter='tiny_exec/sdk_exec/' \
    >/dev/null 2>&1 &
  pid=$!
  wait $pid
  # Inclusive counts of every function of the tracing glue (their callees are theirs too).
  callgrind_annotate --inclusive=yes --threshold=100 "$dir/cg.$pid" 2>/dev/null |
    grep -E 'sandbox::detail::(CallTrace::|trace_(started|attempt_end|error))' |
    awk '{ gsub(",", "", $1); sum += $1 } END { print sum + 0 }'
}
if [ $tracing = yes ]; then
  a=$(tracing_ir 2)
  b=$(tracing_ir 6)
  printf 'tracing functions, no tracer set: %.1f instructions per exec\n' "$(echo "($b - $a) / 4" | bc -l)"
  set -- 'tiny_exec/sdk_exec/' 'tiny_exec/sdk_exec_noop_tracer/'
fi
printf '%-36s %14s\n' row instructions
for row in "$@"; do
  a=$(client_ir "$row" 2)
  b=$(client_ir "$row" 6)
  case $row in
    tiny*) unit=exec; work=4 ;;
    concurrent*) unit=exec; work=256 ;;
    bulk*) unit=MiB; work=32 ;;
    *) unit=iteration; work=4 ;;
  esac
  printf '%-36s %14.0f per %s\n' "$row" "$(echo "($b - $a) / $work" | bc -l)" "$unit"
done
