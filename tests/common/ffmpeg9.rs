//! FFmpeg 9, the Enhanced RTMP peer (installed by scripts/setup.sh into `.peers/`): the
//! binary, test media made with it once per machine, frame checksums, and a listening reader.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::*;

/// The FFmpeg 9 binary that scripts/setup.sh installs from PyPI (imageio-ffmpeg, pinned) into
/// `.peers/`: the only Enhanced RTMP peer.
pub fn ffmpeg9() -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".peers/imageio-ffmpeg-0.8.1/imageio_ffmpeg/binaries/ffmpeg-linux-x86_64-v9.0.2");
    assert!(
        bin.exists(),
        "FFmpeg 9 is missing at {}: run ./scripts/setup.sh (it installs imageio-ffmpeg==0.8.1 \
         from PyPI into .peers/)",
        bin.display()
    );
    bin
}

/// A media file made once per machine by FFmpeg 9 with `codec_args` (after two lavfi inputs,
/// a 320x240 30 fps test pattern and a 48 kHz sine, 30-frame GOP), `seconds` long, named
/// `name` in target/test-media.
pub fn ffmpeg9_media(name: &str, seconds: u32, codec_args: &[&str]) -> PathBuf {
    static MAKING: Mutex<()> = Mutex::new(());
    let _making = MAKING.lock().unwrap_or_else(|e| e.into_inner());
    let path = media_dir().join(name);
    if path.exists() {
        return path;
    }
    let tmp = media_dir().join(format!("{name}.{}.tmp.flv", std::process::id()));
    let out = Command::new(ffmpeg9())
        .args(["-nostdin", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=30"])
        .args(["-f", "lavfi", "-i", "sine=r=48000"])
        .args(codec_args)
        .args(["-g", "30", "-t", &seconds.to_string(), "-f", "flv"])
        .arg(&tmp)
        .output()
        .expect("run FFmpeg 9");
    assert!(
        out.status.success(),
        "FFmpeg 9 could not make {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&tmp, &path).unwrap();
    path
}

/// What FFmpeg's `framecrc` muxer wrote: per stream, the extradata line and every packet as
/// (size, crc, keyframe). Two are equal when those are (timestamps depend on how FFmpeg
/// was told to read them, `-copyts` or not).
#[derive(Debug, Default)]
pub struct FrameCrc {
    pub extradata: std::collections::BTreeMap<u32, String>,
    pub packets: std::collections::BTreeMap<u32, Vec<(u64, String, bool)>>,
    /// Per stream, every packet's (DTS, PTS) in the stream's time base (ms for FLV).
    pub times: std::collections::BTreeMap<u32, Vec<(i64, i64)>>,
}

impl PartialEq for FrameCrc {
    fn eq(&self, other: &Self) -> bool {
        self.extradata == other.extradata && self.packets == other.packets
    }
}

impl Eq for FrameCrc {}

impl FrameCrc {
    pub fn parse(text: &str) -> FrameCrc {
        let mut out = FrameCrc::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("#extradata ") {
                if let Some((idx, val)) = rest.split_once(':') {
                    out.extradata
                        .insert(idx.trim().parse().unwrap(), val.trim().to_string());
                }
                continue;
            }
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split(',').map(str::trim).collect();
            if f.len() < 6 {
                continue;
            }
            let key = !f.get(6).is_some_and(|flags| flags.starts_with("F=0x0"));
            out.times
                .entry(f[0].parse().unwrap())
                .or_default()
                .push((f[1].parse().unwrap(), f[2].parse().unwrap()));
            out.packets.entry(f[0].parse().unwrap()).or_default().push((
                f[4].parse().unwrap(),
                f[5].to_string(),
                key,
            ));
        }
        out
    }

    /// Packets per stream, for messages.
    pub fn counts(&self) -> Vec<(u32, usize)> {
        self.packets.iter().map(|(k, v)| (*k, v.len())).collect()
    }

    /// Panics unless `self` equals `want`, saying where they part: the decoder
    /// configurations, the packet counts, or a stream's first differing packet.
    pub fn assert_same(&self, want: &FrameCrc, what: &str) {
        assert_eq!(
            self.extradata, want.extradata,
            "{what}: decoder configurations"
        );
        assert_eq!(self.counts(), want.counts(), "{what}: packets per stream");
        for (stream, packets) in &want.packets {
            if let Some(i) = (0..packets.len()).find(|&i| self.packets[stream][i] != packets[i]) {
                panic!(
                    "{what}: stream {stream}, packet {i}: {:?}, not {:?}",
                    self.packets[stream][i], packets[i]
                );
            }
        }
    }

    /// (size, checksum) of every packet of stream `index` (none when it has no packets), as
    /// [`server_peers::record_pads`] records a demuxer pad's buffers.
    pub fn sized(&self, index: u32) -> Vec<(u64, String)> {
        self.packets
            .get(&index)
            .map(|v| v.iter().map(|(s, c, _)| (*s, c.clone())).collect())
            .unwrap_or_default()
    }
}

/// Reads `path` (a file or URL) with FFmpeg 9 into framecrc text (`-map 0 -c copy`), with
/// the timestamps as the input has them (`-copyts`).
pub fn ffmpeg9_framecrc(path: &Path) -> FrameCrc {
    let out = Command::new(ffmpeg9())
        .args(["-nostdin", "-loglevel", "error", "-copyts", "-i"])
        .arg(path)
        .args(["-map", "0", "-c", "copy", "-f", "framecrc", "-"])
        .output()
        .expect("run FFmpeg 9");
    assert!(
        out.status.success(),
        "FFmpeg 9 could not read {}",
        path.display()
    );
    FrameCrc::parse(&String::from_utf8_lossy(&out.stdout))
}

/// FFmpeg 9 as a one-client RTMP server (`-listen 1`) on `port`, writing the framecrc of
/// what it gets (`-map 0`, stream copy with `copy`, decoded without) to `out`; returns once
/// it listens.
pub fn ffmpeg9_listen(port: u16, out: &Path, copy: bool) -> ChildGuard {
    let guard = ChildGuard::spawn(
        "FFmpeg 9 -listen 1",
        Command::new(ffmpeg9())
            .args(["-nostdin", "-loglevel", "error", "-y", "-listen", "1", "-i"])
            .arg(format!("rtmp://127.0.0.1:{port}/live/s"))
            .args(["-map", "0"])
            .args(if copy { &["-c", "copy"][..] } else { &[] })
            .args(["-f", "framecrc"])
            .arg(out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
    );
    wait_for_listen(port, Duration::from_secs(120));
    guard
}

/// The Enhanced RTMP test files FFmpeg 9 makes once per machine (4 s each, see
/// [`ffmpeg9_media`]); one place for their names and arguments, so that every test shares
/// the same file.
pub mod emedia {
    use std::path::PathBuf;

    use super::ffmpeg9_media;

    const X265: &[&str] = &[
        "-c:v",
        "libx265",
        "-pix_fmt",
        "yuv420p",
        "-preset",
        "ultrafast",
    ];
    const X264: &[&str] = &[
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast",
    ];
    /// One video track and two audio tracks of the same sine.
    const TWO_AUDIO: &[&str] = &["-map", "0:v", "-map", "1:a", "-map", "1:a"];

    fn make(name: &str, parts: &[&[&str]]) -> PathBuf {
        let args: Vec<&str> = parts.iter().flat_map(|p| p.iter().copied()).collect();
        ffmpeg9_media(name, 4, &args)
    }

    /// HEVC + AAC (E-RTMP v1 video, legacy audio).
    pub fn hevc_aac() -> PathBuf {
        make("e-hevc-aac-4s.flv", &[X265, &["-c:a", "aac"]])
    }

    /// HEVC + two Opus tracks (the second in multitrack packets).
    pub fn hevc_two_opus() -> PathBuf {
        make(
            "e-hevc-2opus-4s.flv",
            &[TWO_AUDIO, X265, &["-c:a", "libopus"]],
        )
    }

    /// H.264 + AAC, all legacy.
    pub fn h264_aac() -> PathBuf {
        make("e-h264-aac-4s.flv", &[X264, &["-c:a", "aac"]])
    }

    /// H.264 + two AAC tracks (track 0 legacy, track 1 multitrack).
    pub fn h264_two_aac() -> PathBuf {
        make("e-h264-2aac-4s.flv", &[TWO_AUDIO, X264, &["-c:a", "aac"]])
    }

    /// AV1 (SVT-AV1) + Opus.
    pub fn av1_opus() -> PathBuf {
        make(
            "e-av1-opus-4s.flv",
            &[
                &["-c:v", "libsvtav1", "-preset", "12", "-pix_fmt", "yuv420p"],
                &["-c:a", "libopus"],
            ],
        )
    }

    /// VP9 + FLAC. The colours are tagged BT.709: untagged, the vpcC record says
    /// "unspecified" (2) matrix coefficients, but FFmpeg, remuxing the file to publish it,
    /// writes 0 (RGB) there, so what it sends would not be the file.
    pub fn vp9_flac() -> PathBuf {
        make(
            "e-vp9-709-flac-4s.flv",
            &[
                &[
                    "-c:v",
                    "libvpx-vp9",
                    "-deadline",
                    "realtime",
                    "-cpu-used",
                    "8",
                ],
                &["-pix_fmt", "yuv420p", "-colorspace", "bt709"],
                &[
                    "-color_primaries",
                    "bt709",
                    "-color_trc",
                    "bt709",
                    "-c:a",
                    "flac",
                ],
            ],
        )
    }

    /// HEVC + AC-3 (an audio codec without a decoder configuration).
    pub fn hevc_ac3() -> PathBuf {
        make("e-hevc-ac3-4s.flv", &[X265, &["-c:a", "ac3"]])
    }

    /// HEVC alone.
    pub fn hevc_only() -> PathBuf {
        make("e-hevc-only-4s.flv", &[&["-map", "0:v"], X265])
    }
}
