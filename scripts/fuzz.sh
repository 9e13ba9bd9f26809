#!/usr/bin/env bash
# Builds and runs every cargo-fuzz target for FUZZ_SECONDS each (default 60), one after the
# other, starting from the committed seed corpora in fuzz/corpus/<target>/. New inputs go to
# fuzz/work/<target>/ (not committed); crashes to fuzz/artifacts/<target>/. Exits non-zero if
# any target crashed, after a summary line per target.
#
#   scripts/fuzz.sh                  # every target, 60 s each
#   FUZZ_SECONDS=10 scripts/fuzz.sh  # CI: 10 s each
#   scripts/fuzz.sh amf0 url         # only these targets
#   FUZZ_NO_TUNNEL=1 scripts/fuzz.sh # skip tunnel_server (the one that links GStreamer)
#
# Needs the nightly toolchain and cargo-fuzz (installed here when missing).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"

seconds=${FUZZ_SECONDS:-60}
if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install --locked cargo-fuzz
fi

engine_targets=(chunk_reader amf0 amf0_roundtrip amf3 handshake_server handshake_client
    flv_parser eflv_tag url server_session client_session)
if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=("${engine_targets[@]}")
    [ -z "${FUZZ_NO_TUNNEL:-}" ] && targets+=(tunnel_server)
fi

features() {
    if [ "$1" = tunnel_server ]; then echo "--features=tunnel"; fi
}

# GLib keeps a few one-time allocations to the end of the process, which LeakSanitizer
# reports at exit; leaks are not checked in the target that links it.
leaks() {
    if [ "$1" = tunnel_server ]; then echo "-detect_leaks=0"; fi
}
asan_options() {
    if [ "$1" = tunnel_server ]; then echo "detect_leaks=0"; else echo "${ASAN_OPTIONS:-}"; fi
}

# Build first, so the run time is spent fuzzing. The engine targets build in one go.
echo "== building ${#targets[@]} fuzz targets"
build_start=$SECONDS
cargo +nightly fuzz build
for t in "${targets[@]}"; do
    if [ "$t" = tunnel_server ]; then cargo +nightly fuzz build --features=tunnel tunnel_server; fi
done
echo "== built in $((SECONDS - build_start)) s"

summary=()
failed=0
for t in "${targets[@]}"; do
    mkdir -p "work/$t" "corpus/$t"
    log="work/$t.log"
    echo "== $t: ${seconds} s"
    # shellcheck disable=SC2046
    if ASAN_OPTIONS=$(asan_options "$t") cargo +nightly fuzz run $(features "$t") "$t" "work/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 $(leaks "$t") \
        >"$log" 2>&1; then
        status=ok
    else
        status=CRASH
        failed=1
        tail -n 40 "$log"
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1 | grep -o '[0-9]*' || echo '?')
    summary+=("$(printf '%-18s %-6s %10s execs  cov %s' "$t" "$status" "$runs" "$cov")")
done

echo "== summary (${seconds} s per target)"
printf '%s\n' "${summary[@]}"
if [ "$failed" -ne 0 ]; then
    echo "crash inputs are in fuzz/artifacts/<target>/; reproduce with"
    echo "  cd fuzz && cargo +nightly fuzz run <target> artifacts/<target>/<file>"
fi
exit "$failed"
