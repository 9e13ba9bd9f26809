#!/bin/sh
# Called by meson: cargo build of the plugin, then copy the .so to where meson expects it.
# usage: cargo-build-plugin.sh CARGO SOURCE_ROOT TARGET_DIR debug|release OUTPUT
set -eu
cargo="$1"; src="$2"; target="$3"; profile="$4"; out="$5"
if [ "$profile" = release ]; then flag=--release; else flag=; fi
"$cargo" build $flag --manifest-path "$src/Cargo.toml" --target-dir "$target" -p gst-plugin-rsrtmp --lib
cp "$target/$profile/libgstrsrtmp.so" "$out"
