#!/usr/bin/env bash
# Runs the whole test suite (./scripts/test.sh) several times back to back while a CPU hog keeps
# every core busy: what CI on a loaded two-core machine sees. A test that depends on the
# machine's speed shows up here as a failed run.
#
#   ./scripts/stress-test.sh [ARGS...]    ARGS go to ./scripts/test.sh (so to cargo test), e.g.
#                                         --no-fail-fast to see every failing test of a run
#   RUNS=3 ./scripts/stress-test.sh       how many runs (default 2)
#   HOGS=4 ./scripts/stress-test.sh       how many CPU hogs (default: one per core, nproc)
#
# Each run's exit status, wall time, `test result:` lines and failed tests go to
# target/stress-test/run-N.log, its whole output to target/stress-test/run-N.output. Exits
# non-zero when any run failed.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS="${RUNS:-2}"
HOGS="${HOGS:-$(nproc)}"
if ! [[ "$RUNS" =~ ^[1-9][0-9]*$ ]]; then
  echo "stress-test: RUNS must be a positive number, got '$RUNS'" >&2
  exit 2
fi
if ! [[ "$HOGS" =~ ^[1-9][0-9]*$ ]]; then
  echo "stress-test: HOGS must be a positive number, got '$HOGS'" >&2
  exit 2
fi

OUT_DIR="target/stress-test"
mkdir -p "$OUT_DIR"
rm -f "$OUT_DIR"/run-*.log "$OUT_DIR"/run-*.output

# ---- the CPU hog ---------------------------------------------------------------------------

if ! command -v stress-ng >/dev/null; then
  echo "stress-test: installing stress-ng"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  if ! { $SUDO apt-get update -qq &&
    $SUDO apt-get install -y -qq --no-install-recommends stress-ng >/dev/null; }; then
    echo "stress-test: could not install stress-ng; busy loops will load the CPUs instead" >&2
  fi
fi

HOG_PIDS=()
HOG_KIND=""

stop_hogs() {
  local pid
  for pid in "${HOG_PIDS[@]+"${HOG_PIDS[@]}"}"; do
    # stress-ng ends its workers when it gets SIGTERM.
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${HOG_PIDS[@]+"${HOG_PIDS[@]}"}"; do
    wait "$pid" 2>/dev/null || true
  done
  HOG_PIDS=()
}
trap stop_hogs EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_hogs() {
  if command -v stress-ng >/dev/null; then
    stress-ng --cpu "$HOGS" --cpu-load 100 --timeout 1d --quiet &
    HOG_PIDS+=("$!")
    sleep 1
    if kill -0 "${HOG_PIDS[0]}" 2>/dev/null; then
      HOG_KIND="stress-ng --cpu $HOGS --cpu-load 100"
      return
    fi
    echo "stress-test: stress-ng did not keep running; busy loops instead" >&2
    stop_hogs
  fi
  local i
  for ((i = 0; i < HOGS; i++)); do
    (while :; do :; done) &
    HOG_PIDS+=("$!")
  done
  HOG_KIND="$HOGS busy loop(s) in bash"
}

start_hogs
echo "stress-test: CPU hog: $HOG_KIND (pids ${HOG_PIDS[*]}) on $(nproc) CPU(s)"

# ---- the runs ------------------------------------------------------------------------------

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

STATUSES=()
TIMES=()
for ((n = 1; n <= RUNS; n++)); do
  output="$OUT_DIR/run-$n.output"
  log="$OUT_DIR/run-$n.log"
  echo "stress-test: run $n of $RUNS: ./scripts/test.sh $*"
  start=$(now)
  set +e
  ./scripts/test.sh "$@" 2>&1 | tee "$output"
  status=${PIPESTATUS[0]}
  set -e
  wall=$(elapsed "$start" "$(now)")
  STATUSES+=("$status")
  TIMES+=("$wall")
  {
    echo "run $n of $RUNS: ./scripts/test.sh $*"
    echo "started: $(date -d "@${start%.*}" '+%F %T')"
    echo "CPU hog: $HOG_KIND on $(nproc) CPU(s)"
    echo "exit status: $status"
    echo "wall time: ${wall} s"
    echo "test result lines:"
    grep -a 'test result:' "$output" || echo "(none)"
    echo "failed tests:"
    grep -aE '^test .* \.\.\. FAILED$' "$output" || echo "(none)"
  } >"$log"
  echo "stress-test: run $n ended with status $status after ${wall} s (log: $log)"
done

stop_hogs

# ---- summary -------------------------------------------------------------------------------

echo
echo "stress-test summary ($RUNS run(s) under $HOG_KIND):"
failed=0
for ((n = 1; n <= RUNS; n++)); do
  log="$OUT_DIR/run-$n.log"
  # Totals over the test binaries of the run.
  totals=$(grep -a 'test result:' "$OUT_DIR/run-$n.output" | awk '
    { for (i = 1; i <= NF; i++) {
        if ($(i + 1) ~ /^passed/) p += $i
        if ($(i + 1) ~ /^failed/) f += $i } }
    END { printf "%d passed, %d failed", p, f }') || totals="no test results"
  status=${STATUSES[$((n - 1))]}
  verdict="ok"
  if [ "$status" -ne 0 ]; then
    verdict="FAILED"
    failed=1
  fi
  printf '  run %d: %-6s exit %d, %s s, %s (%s)\n' \
    "$n" "$verdict" "$status" "${TIMES[$((n - 1))]}" "$totals" "$log"
  grep -aE '^test .* \.\.\. FAILED$' "$OUT_DIR/run-$n.output" | sed 's/^/      /' || true
done
exit "$failed"
