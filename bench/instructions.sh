#!/bin/sh
# Client instructions per unit of work under callgrind: a measure that a loaded machine does
# not move (wall clock and CPU time do, by tens of percent, on 2 shared cores).
#
#   bench/instructions.sh BIN [ROW_REGEX...]
#   bench/instructions.sh --tracing BIN
#
# Each row runs twice in its own process (--short sizes, --separate_server so the server's
# instructions land in another file), with 2 and then more iterations (tiny: 202,
# concurrent64: 22, bulk: 6); the difference of the client process's instruction counts,
# divided by the work in between, is the cost of one exec (concurrent64: 64 execs per
# iteration) or one MiB (bulk, 8 MiB per iteration). Connection set-up and warm-up cancel
# out.
#
# --tracing: what tracing costs an exec (issue 6: "zero cost when unused"). For
# tiny_exec/sdk_exec (no tracer), .../sdk_exec_noop_tracer and .../sdk_exec_otel_tracer: the
# instructions of the SDK's tracing functions (CallTrace, trace_*) inclusive of what they
# call (the tracer's spans), per exec; then the untraced exec's whole count beside them.
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
  'concurrent64_tiny/sdk_exec_callback/' \
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
tracing_ir() {  # ROW ITERATIONS -> instructions inside the SDK's tracing functions
  rm -f "$dir"/cg.*
  valgrind --tool=callgrind --callgrind-out-file="$dir/cg.%p" --trace-children=no \
    "$bin" --short --separate_server --iterations="$2" --benchmark_filter="$1" \
    >/dev/null 2>&1 &
  pid=$!
  wait $pid
  # Inclusive counts of every function of the tracing glue (their callees are theirs too).
  # Their lines, and their inlined lines attributed to headers; not the call-graph lines
  # ("=>"), which repeat them.
  callgrind_annotate --inclusive=yes --threshold=100 "$dir/cg.$pid" 2>/dev/null |
    grep -E 'sandbox::detail::(CallTrace::|trace_(started|attempt_end|error))' | grep -v '=>' |
    awk '{ gsub(",", "", $1); sum += $1 } END { print sum + 0 }'
}
if [ $tracing = yes ]; then
  printf '%-36s %14s\n' row 'in tracing code'
  for row in 'tiny_exec/sdk_exec/' 'tiny_exec/sdk_exec_noop_tracer/' 'tiny_exec/sdk_exec_otel_tracer/'; do
    a=$(tracing_ir "$row" 2)
    b=$(tracing_ir "$row" 22)
    printf '%-36s %14.0f per exec\n' "$row" "$(echo "($b - $a) / 20" | bc -l)"
  done
  set -- 'tiny_exec/sdk_exec/'
fi
printf '%-36s %14s\n' row instructions
# Enough work between the two runs that gRPC's background threads (counted too) stay small
# beside it: 200 tiny execs, 1,280 concurrent ones (20 batches), 32 MiB of a bulk row. More
# for the tracing comparison: its difference is small beside that noise.
few=2
for row in "$@"; do
  case $row in
    tiny*) unit=exec; many=202; [ $tracing = yes ] && many=402; work=$((many - few)) ;;
    concurrent*) unit=exec; many=22; work=$(((many - few) * 64)) ;;
    bulk*) unit=MiB; many=6; work=$(((many - few) * 8)) ;;
    *) unit=iteration; many=6; work=$((many - few)) ;;
  esac
  a=$(client_ir "$row" $few)
  b=$(client_ir "$row" $many)
  printf '%-36s %14.0f per %s\n' "$row" "$(echo "($b - $a) / $work" | bc -l)" "$unit"
done
