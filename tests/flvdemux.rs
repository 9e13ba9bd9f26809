//! rsflvdemux against files nobody here wrote: FFmpeg 9 writes Enhanced FLV (HEVC, AV1, VP9,
//! Opus, FLAC, AC-3, E-AC-3, several audio and video tracks) and every track's packets come
//! out of rsflvdemux byte-exact (adler32 and size per packet, as FFmpeg's framecrc reads
//! them), with FFmpeg's timestamps and keyframes, and GStreamer's decoders decode them.
//! Legacy files (FFmpeg 5.1: H.264, Sorenson, Flash Screen, AAC, MP3, Nellymoser, ADPCM,
//! PCM, G.711, Speex) give exactly what flvdemux gives.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gst::prelude::*;

use common::{ffmpeg9_framecrc, ffmpeg9_media, init_gst, media_dir, pipeline, run};

const DEADLINE: Duration = Duration::from_secs(90);

/// One buffer a demuxer pad gave.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Frame {
    size: usize,
    adler: u32,
    pts_ms: Option<u64>,
    dts_ms: Option<u64>,
    delta: bool,
}

/// FFmpeg's framecrc checksum: Adler-32 started from 0 (not 1, as zlib's is).
fn adler32(data: &[u8]) -> u32 {
    let (mut a, mut b) = (0u32, 0u32);
    for &x in data {
        a = (a + u32::from(x)) % 65521;
        b = (b + a) % 65521;
    }
    b << 16 | a
}

/// What each pad of the demuxer gave: its caps and its buffers, in order.
type Pads = BTreeMap<String, (gst::Caps, Vec<Frame>)>;

/// Runs `filesrc ! DEMUXER` on `path` with an appsink on every pad, to EOS.
fn demux(path: &Path, demuxer: &str) -> Pads {
    init_gst();
    let p = pipeline(&format!(
        "filesrc location={} ! {demuxer} name=d",
        path.display()
    ));
    let pads: Arc<Mutex<Pads>> = Arc::default();
    let bin = p.0.clone();
    let got = pads.clone();
    p.by_name("d").unwrap().connect_pad_added(move |_, pad| {
        let name = pad.name().to_string();
        let sink = gst_app::AppSink::builder().sync(false).build();
        bin.add(&sink).unwrap();
        sink.sync_state_with_parent().unwrap();
        let got = got.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let buffer = sample.buffer().unwrap();
                    let map = buffer.map_readable().unwrap();
                    let mut pads = got.lock().unwrap();
                    let entry = pads
                        .entry(name.clone())
                        .or_insert_with(|| (sample.caps().unwrap().to_owned(), Vec::new()));
                    entry.0 = sample.caps().unwrap().to_owned();
                    entry.1.push(Frame {
                        size: map.len(),
                        adler: adler32(&map),
                        pts_ms: buffer.pts().map(|t| t.mseconds()),
                        dts_ms: buffer.dts().map(|t| t.mseconds()),
                        delta: buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
                    });
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        pad.link(&sink.static_pad("sink").unwrap()).unwrap();
    });
    run(&p, DEADLINE).expect_eos();
    drop(p);
    pads.lock().unwrap().clone()
}

/// Every FFmpeg 9 stream of `path` is one pad of rsflvdemux with the same packets
/// (size, adler32), the same DTS and PTS, and the same keyframes; returns the pads.
fn exact_against_ffmpeg9(path: &Path, want_pads: &[&str]) -> Pads {
    let want = ffmpeg9_framecrc(path);
    let got = demux(path, "rsflvdemux");
    assert_eq!(
        got.keys().map(String::as_str).collect::<Vec<_>>(),
        want_pads,
        "{}: pads (FFmpeg 9 sees {:?})",
        path.display(),
        want.counts()
    );
    assert_eq!(
        got.len(),
        want.packets.len(),
        "{}: one pad per FFmpeg stream",
        path.display()
    );
    for (stream, packets) in &want.packets {
        let times = &want.times[stream];
        let wanted: Vec<(u64, String, bool, i64, i64)> = packets
            .iter()
            .zip(times)
            .map(|((size, crc, key), (dts, pts))| (*size, crc.clone(), *key, *dts, *pts))
            .collect();
        let matching = got.iter().find(|(_, (_, frames))| {
            let ours: Vec<(u64, String, bool, i64, i64)> = frames
                .iter()
                .map(|f| {
                    (
                        f.size as u64,
                        format!("0x{:08x}", f.adler),
                        !f.delta,
                        f.dts_ms.unwrap() as i64,
                        f.pts_ms.unwrap() as i64,
                    )
                })
                .collect();
            ours == wanted
        });
        if matching.is_none() {
            for (name, (_, frames)) in &got {
                if frames.len() == wanted.len() {
                    let first = frames.iter().zip(&wanted).position(|(f, w)| {
                        (
                            f.size as u64,
                            format!("0x{:08x}", f.adler),
                            !f.delta,
                            f.dts_ms.unwrap() as i64,
                            f.pts_ms.unwrap() as i64,
                        ) != *w
                    });
                    if let Some(i) = first {
                        eprintln!(
                            "{name}: first difference at {i}: ours {:?}, FFmpeg 9 {:?}",
                            frames[i], wanted[i]
                        );
                    }
                }
            }
        }
        assert!(
            matching.is_some(),
            "{}: FFmpeg 9 stream {stream} ({} packets) matches no pad exactly; pads: {:?}",
            path.display(),
            packets.len(),
            got.iter()
                .map(|(k, (c, f))| (
                    k.clone(),
                    c.structure(0).unwrap().name().to_string(),
                    f.len()
                ))
                .collect::<Vec<_>>()
        );
    }
    got
}

fn caps_name(pads: &Pads, pad: &str) -> String {
    pads[pad].0.structure(0).unwrap().name().to_string()
}

/// Decodes `path` through rsflvdemux with `branches` (pad → parser/decoder chain, each
/// ending in a fakesink named after the pad) and returns the decoded buffer count per pad.
fn decode(path: &Path, branches: &[(&str, &str)]) -> BTreeMap<String, u64> {
    init_gst();
    let mut desc = format!("filesrc location={} ! rsflvdemux name=d", path.display());
    for (pad, chain) in branches {
        let sink = pad.replace('_', "");
        desc.push_str(&format!(
            " d.{pad} ! queue ! {chain} ! fakesink name={sink}"
        ));
    }
    let p = pipeline(&desc);
    let counters: Vec<_> = branches
        .iter()
        .map(|(pad, _)| {
            (
                pad.to_string(),
                common::count_buffers(&p, &pad.replace('_', "")),
            )
        })
        .collect();
    run(&p, DEADLINE).expect_eos();
    counters
        .into_iter()
        .map(|(k, c)| (k, c.load(std::sync::atomic::Ordering::SeqCst)))
        .collect()
}

/// Decoded at least nine in ten of the packets the pad gave (decoders may merge or hold
/// back a few at the edges), and at least one.
fn decoded_most(decoded: &BTreeMap<String, u64>, pads: &Pads) {
    for (pad, n) in decoded {
        let packets = pads[pad].1.len() as u64;
        assert!(
            *n > 0 && *n * 10 >= packets * 9,
            "{pad}: decoded {n} buffers from {packets} packets"
        );
    }
}

fn media(name: &str, args: &[&str]) -> PathBuf {
    ffmpeg9_media(name, 2, args)
}

const X265: [&str; 6] = [
    "-c:v",
    "libx265",
    "-pix_fmt",
    "yuv420p",
    "-preset",
    "ultrafast",
];

#[test]
fn hevc_and_aac() {
    let path = ffmpeg9_media(
        "e-hevc-aac-4s.flv",
        4,
        &[X265.as_slice(), &["-c:a", "aac"]].concat(),
    );
    let pads = exact_against_ffmpeg9(&path, &["audio", "video"]);
    assert_eq!(caps_name(&pads, "video"), "video/x-h265");
    let s = pads["video"].0.structure(0).unwrap().to_owned();
    assert_eq!(s.get::<&str>("stream-format").unwrap(), "hvc1");
    assert!(s.has_field("codec_data"), "{s}");
    assert_eq!(caps_name(&pads, "audio"), "audio/mpeg");
    let decoded = decode(
        &path,
        &[
            ("video", "h265parse ! avdec_h265"),
            ("audio", "aacparse ! avdec_aac"),
        ],
    );
    decoded_most(&decoded, &pads);
}

#[test]
fn hevc_and_two_opus_tracks() {
    let path = ffmpeg9_media(
        "e-hevc-2opus-4s.flv",
        4,
        &[
            &["-map", "0:v", "-map", "1:a", "-map", "1:a"],
            X265.as_slice(),
            &["-c:a", "libopus"],
        ]
        .concat(),
    );
    let pads = exact_against_ffmpeg9(&path, &["audio", "audio_1", "video"]);
    assert_eq!(caps_name(&pads, "audio_1"), "audio/x-opus");
    let decoded = decode(
        &path,
        &[
            ("video", "h265parse ! avdec_h265"),
            ("audio", "opusdec"),
            ("audio_1", "opusparse ! opusdec"),
        ],
    );
    decoded_most(&decoded, &pads);
}

#[test]
fn av1_and_opus() {
    let path = media(
        "e-av1-opus-2s.flv",
        &[
            "-c:v",
            "libsvtav1",
            "-preset",
            "12",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "libopus",
        ],
    );
    let pads = exact_against_ffmpeg9(&path, &["audio", "video"]);
    let s = pads["video"].0.structure(0).unwrap().to_owned();
    assert_eq!(s.name(), "video/x-av1");
    assert_eq!(s.get::<&str>("stream-format").unwrap(), "obu-stream");
    assert_eq!(s.get::<&str>("chroma-format").unwrap(), "4:2:0");
    let decoded = decode(
        &path,
        &[("video", "av1parse ! av1dec"), ("audio", "opusdec")],
    );
    decoded_most(&decoded, &pads);
}

#[test]
fn vp9_and_flac() {
    let path = media(
        "e-vp9-flac-2s.flv",
        &[
            "-c:v",
            "libvpx-vp9",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "flac",
        ],
    );
    let pads = exact_against_ffmpeg9(&path, &["audio", "video"]);
    let s = pads["video"].0.structure(0).unwrap().to_owned();
    assert_eq!(s.name(), "video/x-vp9");
    assert_eq!(s.get::<&str>("profile").unwrap(), "0");
    assert_eq!(caps_name(&pads, "audio"), "audio/x-flac");
    let decoded = decode(
        &path,
        &[
            ("video", "vp9parse ! vp9dec"),
            ("audio", "flacparse ! flacdec"),
        ],
    );
    decoded_most(&decoded, &pads);
}

#[test]
fn h264_with_ac3_and_eac3_tracks() {
    let path = media(
        "e-h264-ac3-eac3-2s.flv",
        &[
            "-map", "0:v", "-map", "1:a", "-map", "1:a", "-c:v", "libx264", "-preset", "veryfast",
            "-pix_fmt", "yuv420p", "-c:a:0", "ac3", "-c:a:1", "eac3",
        ],
    );
    let pads = exact_against_ffmpeg9(&path, &["audio", "audio_1", "video"]);
    assert_eq!(caps_name(&pads, "audio"), "audio/x-ac3");
    assert_eq!(caps_name(&pads, "audio_1"), "audio/x-eac3");
    let s = pads["audio"].0.structure(0).unwrap().to_owned();
    assert_eq!(s.get::<i32>("rate").unwrap(), 48000);
    let decoded = decode(
        &path,
        &[
            ("video", "h264parse ! avdec_h264"),
            ("audio", "ac3parse ! avdec_ac3"),
            ("audio_1", "ac3parse ! avdec_eac3"),
        ],
    );
    decoded_most(&decoded, &pads);
}

#[test]
fn two_video_tracks_and_mp3() {
    let path = media(
        "e-2h264-mp3-2s.flv",
        &[
            "-map",
            "0:v",
            "-map",
            "0:v",
            "-map",
            "1:a",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "libmp3lame",
            "-ar",
            "44100",
        ],
    );
    let pads = exact_against_ffmpeg9(&path, &["audio", "video", "video_1"]);
    assert_eq!(caps_name(&pads, "video_1"), "video/x-h264");
    let s = pads["audio"].0.structure(0).unwrap().to_owned();
    assert_eq!(s.get::<i32>("mpegversion").unwrap(), 1);
    assert_eq!(s.get::<i32>("rate").unwrap(), 44100);
    let decoded = decode(
        &path,
        &[
            ("video", "h264parse ! avdec_h264"),
            ("video_1", "h264parse ! avdec_h264"),
            ("audio", "mpegaudioparse ! avdec_mp3"),
        ],
    );
    decoded_most(&decoded, &pads);
}

/// A legacy FLV written by Debian's FFmpeg 5.1, made once and shared.
fn legacy_media(name: &str, args: &[&str]) -> PathBuf {
    common::require("ffmpeg", "ffmpeg");
    let path = media_dir().join(name);
    if path.exists() {
        return path;
    }
    let tmp = media_dir().join(format!("{name}.{}.tmp.flv", std::process::id()));
    let out = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc=size=160x120:rate=15"])
        .args(["-f", "lavfi", "-i", "sine=r=44100"])
        .args(args)
        .args(["-t", "2", "-f", "flv"])
        .arg(&tmp)
        .output()
        .expect("run ffmpeg");
    assert!(
        out.status.success(),
        "ffmpeg could not make {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::rename(&tmp, &path).unwrap();
    path
}

/// rsflvdemux and flvdemux give the same pads, caps names, rates and channel counts, and
/// the same buffers (bytes, timestamps, keyframes).
fn same_as_flvdemux(path: &Path) {
    let ours = demux(path, "rsflvdemux");
    let theirs = demux(path, "flvdemux");
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "{}: pads",
        path.display()
    );
    assert!(!ours.is_empty(), "{}: no pads", path.display());
    for (pad, (caps, frames)) in &theirs {
        let (our_caps, our_frames) = &ours[pad];
        let (a, b) = (our_caps.structure(0).unwrap(), caps.structure(0).unwrap());
        assert_eq!(
            a.name(),
            b.name(),
            "{}: {pad} caps {a} vs {b}",
            path.display()
        );
        for field in ["rate", "channels"] {
            if b.has_field(field) {
                assert_eq!(
                    a.get::<i32>(field).ok(),
                    b.get::<i32>(field).ok(),
                    "{}: {pad} {field}: {a} vs {b}",
                    path.display()
                );
            }
        }
        assert_eq!(
            our_frames.len(),
            frames.len(),
            "{}: {pad} buffer count",
            path.display()
        );
        for (i, (o, t)) in our_frames.iter().zip(frames).enumerate() {
            assert_eq!(o, t, "{}: {pad} buffer {i}", path.display());
        }
    }
}

#[test]
fn legacy_files_as_flvdemux_reads_them() {
    for (name, args) in [
        (
            "l-h264-aac.flv",
            &[
                "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-bf", "2",
                "-c:a", "aac",
            ][..],
        ),
        ("l-flv1-mp3.flv", &["-c:v", "flv", "-c:a", "libmp3lame"][..]),
        (
            "l-flashsv-adpcm.flv",
            &["-c:v", "flashsv", "-c:a", "adpcm_swf"][..],
        ),
        (
            "l-flv1-nellymoser.flv",
            &["-c:v", "flv", "-c:a", "nellymoser"][..],
        ),
        ("l-flv1-pcm.flv", &["-c:v", "flv", "-c:a", "pcm_s16le"][..]),
        (
            "l-flv1-u8.flv",
            &["-c:v", "flv", "-c:a", "pcm_u8", "-ar", "22050"][..],
        ),
        (
            "l-flv1-alaw.flv",
            &["-c:v", "flv", "-c:a", "pcm_alaw", "-ar", "8000"][..],
        ),
        (
            "l-flv1-mulaw.flv",
            &["-c:v", "flv", "-c:a", "pcm_mulaw", "-ar", "8000"][..],
        ),
        (
            "l-flv1-speex.flv",
            &["-c:v", "flv", "-c:a", "libspeex", "-ar", "16000"][..],
        ),
    ] {
        same_as_flvdemux(&legacy_media(name, args));
    }
}
