#!/usr/bin/env bash
# The rsrtmp demo on a fresh Debian/Ubuntu machine: installs what is missing, builds, then runs
# an RTMP ingest server (rtmpserversrc) that transcodes to HLS and re-serves the stream to RTMP
# players (rtmpserversink), fed by a built-in test-pattern publisher. Arguments go to the demo;
# `./scripts/demo.sh --help` lists them.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
exec cargo run --release --example demo -- "$@"
