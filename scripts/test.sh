#!/usr/bin/env bash
# Runs every test of rsrtmp on a fresh Debian/Ubuntu machine: installs what is missing (system
# packages, test peers), then the whole test suite with GLib warnings made fatal.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
[ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
export G_DEBUG=fatal_warnings
cargo test --workspace --all-targets "$@"
