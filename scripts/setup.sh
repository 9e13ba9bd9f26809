#!/usr/bin/env bash
# Installs what rsrtmp needs to build, run its demo and run its tests, on Debian/Ubuntu.
# Idempotent: packages already present are not reinstalled, and apt is skipped entirely
# when nothing is missing.
set -euo pipefail

PKGS=(
  # build
  pkg-config libglib2.0-dev libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev meson
  # run / demo
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
  # real peers for the interop tests
  ffmpeg rtmpdump nginx-light libnginx-mod-rtmp stunnel4 openssl
  # the browser side of the demo (webrtcbin needs libnice's elements at run time) and the
  # real browser of its tests (9 packages, ~120 MB download; tests/browser_players.rs)
  gstreamer1.0-nice chromium
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: system packages present"
fi

if ! command -v cargo >/dev/null; then
  echo "setup: installing the Rust toolchain with rustup"
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c rustfmt,clippy
  # shellcheck disable=SC1091
  . "$HOME/.cargo/env"
fi
rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy 2>/dev/null || true

# FFmpeg 9 (static, from PyPI's imageio-ffmpeg wheel): the Enhanced RTMP peer (HEVC, AV1, VP9,
# Opus, FLAC, AC-3, multitrack) and a second RTMPE client. Pinned, installed into the project's
# own .peers/ folder; the tests find it there (tests/common: ffmpeg9()).
FF9_VERSION=0.8.1
FF9_DIR=".peers/imageio-ffmpeg-$FF9_VERSION"
FF9_BIN="$FF9_DIR/imageio_ffmpeg/binaries/ffmpeg-linux-x86_64-v9.0.2"
if [ ! -x "$FF9_BIN" ]; then
  echo "setup: installing FFmpeg 9 (imageio-ffmpeg==$FF9_VERSION) into $FF9_DIR"
  PY=python3
  command -v "$PY" >/dev/null || { echo "setup: python3 is needed for FFmpeg 9" >&2; exit 1; }
  "$PY" -m pip --version >/dev/null 2>&1 || {
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
  }
  rm -rf "$FF9_DIR.tmp"
  "$PY" -m pip install -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --target "$FF9_DIR.tmp" "imageio-ffmpeg==$FF9_VERSION"
  chmod +x "$FF9_DIR.tmp"/imageio_ffmpeg/binaries/ffmpeg-linux-x86_64-v9.0.2
  rm -rf "$FF9_DIR" && mv "$FF9_DIR.tmp" "$FF9_DIR"
fi
