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
    /// The PTS to the nanosecond (ModEx offsets).
    pts_ns: Option<u64>,
    delta: bool,
    discont: bool,
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

/// What one pad of the demuxer gave: every caps it had, and its buffers, in order.
#[derive(Debug, Clone, Default)]
struct PadLog {
    caps: Vec<gst::Caps>,
    frames: Vec<Frame>,
}

impl PadLog {
    fn structure(&self) -> &gst::StructureRef {
        self.caps.last().unwrap().structure(0).unwrap()
    }
}

/// Per pad name.
type Pads = BTreeMap<String, PadLog>;

/// Links every pad the demuxer `name` in `p` adds to an appsink that records what it gets.
fn attach(p: &gst::Pipeline, name: &str) -> Arc<Mutex<Pads>> {
    let pads: Arc<Mutex<Pads>> = Arc::default();
    let bin = p.clone();
    let got = pads.clone();
    p.by_name(name).unwrap().connect_pad_added(move |_, pad| {
        let name = pad.name().to_string();
        // Not async: an async sink added to a PLAYING pipeline can race GstBin's state
        // bookkeeping so that it never posts EOS (GStreamer 1.22; see tests/flv_roundtrip.rs).
        let sink = gst_app::AppSink::builder()
            .sync(false)
            .async_(false)
            .build();
        // A queue per pad: sinks preroll on their own threads (after a seek, one streaming
        // thread blocked in one sink's preroll would never feed the other).
        let queue = gst::ElementFactory::make("queue").build().unwrap();
        bin.add_many([&queue, sink.upcast_ref()]).unwrap();
        queue.link(&sink).unwrap();
        sink.sync_state_with_parent().unwrap();
        queue.sync_state_with_parent().unwrap();
        let got = got.clone();
        sink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |s| {
                    let sample = s.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let buffer = sample.buffer().unwrap();
                    let map = buffer.map_readable().unwrap();
                    let mut pads = got.lock().unwrap();
                    let entry = pads.entry(name.clone()).or_default();
                    let caps = sample.caps().unwrap();
                    if entry.caps.last().map(|c| c.as_ref()) != Some(caps) {
                        entry.caps.push(caps.to_owned());
                    }
                    entry.frames.push(Frame {
                        size: map.len(),
                        adler: adler32(&map),
                        pts_ms: buffer.pts().map(|t| t.mseconds()),
                        dts_ms: buffer.dts().map(|t| t.mseconds()),
                        pts_ns: buffer.pts().map(|t| t.nseconds()),
                        delta: buffer.flags().contains(gst::BufferFlags::DELTA_UNIT),
                        discont: buffer.flags().contains(gst::BufferFlags::DISCONT),
                    });
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
        pad.link(&queue.static_pad("sink").unwrap()).unwrap();
    });
    pads
}

/// Runs `filesrc ! DEMUXER` on `path` with an appsink on every pad, to EOS.
fn demux(path: &Path, demuxer: &str) -> Pads {
    init_gst();
    let p = pipeline(&format!(
        "filesrc location={} ! {demuxer} name=d",
        path.display()
    ));
    let pads = attach(&p, "d");
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
        let matching = got.iter().find(|(_, PadLog { frames, .. })| {
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
            for (name, PadLog { frames, .. }) in &got {
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
                .map(|(k, l)| (k.clone(), l.structure().name().to_string(), l.frames.len()))
                .collect::<Vec<_>>()
        );
    }
    got
}

fn caps_name(pads: &Pads, pad: &str) -> String {
    pads[pad].structure().name().to_string()
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
        let packets = pads[pad].frames.len() as u64;
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
    let s = pads["video"].structure().to_owned();
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
    let s = pads["video"].structure().to_owned();
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
    let s = pads["video"].structure().to_owned();
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
    let s = pads["audio"].structure().to_owned();
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
    let s = pads["audio"].structure().to_owned();
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
    for (pad, PadLog { frames, .. }) in &theirs {
        let our_frames = &ours[pad].frames;
        let (a, b) = (ours[pad].structure(), theirs[pad].structure());
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
            // DISCONT on a first buffer is a matter of taste; everything else must agree.
            let t = Frame {
                discont: o.discont,
                ..t.clone()
            };
            assert_eq!(*o, t, "{}: {pad} buffer {i}", path.display());
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

/// (size, checksum, keyframe) per packet, and (DTS, PTS − DTS) per packet.
type Packets = (Vec<(u64, String, bool)>, Vec<(i64, i64)>);

fn ours(frames: &[Frame]) -> Packets {
    frames
        .iter()
        .map(|f| {
            let dts = f.dts_ms.unwrap() as i64;
            (
                (f.size as u64, format!("0x{:08x}", f.adler), !f.delta),
                (dts, f.pts_ms.unwrap() as i64 - dts),
            )
        })
        .unzip()
}

/// Two FFmpeg 9 publishers, one after the other, into `rtmpserversrc ! rsflvdemux`: the
/// pads come up once, every packet of every track of both arrives byte-exact with its
/// keyframe flag and composition time, the second publisher's first buffer on each pad is
/// DISCONT and its timestamps continue after the first one's (one offset for all tracks).
#[test]
fn behind_rtmpserversrc_every_track_of_every_publisher() {
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
    let want = ffmpeg9_framecrc(&path);
    init_gst();
    let p =
        pipeline("rtmpserversrc name=src address=127.0.0.1 port=0 stream=in ! rsflvdemux name=d");
    let pads = attach(&p, "d");
    p.set_state(gst::State::Playing).unwrap();
    let port: u32 = p.by_name("src").unwrap().property("port");
    for round in 0..2 {
        let mut publisher = common::ChildGuard::spawn(
            "FFmpeg 9 publisher",
            Command::new(common::ffmpeg9())
                .args(["-nostdin", "-loglevel", "error", "-i"])
                .arg(&path)
                .args(["-map", "0", "-c", "copy", "-f", "flv"])
                .arg(format!("rtmp://127.0.0.1:{port}/live/in"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped()),
        );
        let status = publisher.wait_timeout(DEADLINE);
        assert!(
            status.success(),
            "publisher {round}: {}",
            publisher.stderr_text()
        );
        // The next publisher only after this one's last packet is out of the demuxer.
        let total: usize = want.packets.values().map(Vec::len).sum::<usize>() * (round + 1);
        common::server_peers::wait_until("every packet of the publisher", DEADLINE, || {
            pads.lock()
                .unwrap()
                .values()
                .map(|l| l.frames.len())
                .sum::<usize>()
                >= total
        });
    }
    let _ = p.set_state(gst::State::Null);
    let pads = pads.lock().unwrap().clone();
    assert_eq!(
        pads.keys().map(String::as_str).collect::<Vec<_>>(),
        ["audio", "audio_1", "video"]
    );
    let mut offsets = Vec::new();
    for (stream, packets) in &want.packets {
        let n = packets.len();
        let want_times: Vec<(i64, i64)> = want.times[stream]
            .iter()
            .map(|(dts, pts)| (*dts, pts - dts))
            .collect();
        let (pad, frames) = pads
            .iter()
            .map(|(k, l)| (k, &l.frames))
            .find(|(_, f)| f.len() == 2 * n && ours(&f[..n]).0 == *packets)
            .unwrap_or_else(|| panic!("FFmpeg 9 stream {stream}: no pad has its packets twice"));
        for (round, part) in [&frames[..n], &frames[n..]].into_iter().enumerate() {
            let (data, times) = ours(part);
            assert_eq!(data, *packets, "{pad}, publisher {round}: packets");
            // One offset between the file's DTS and ours for the whole round.
            let offset = times[0].0 - want_times[0].0;
            for (i, (got, w)) in times.iter().zip(&want_times).enumerate() {
                assert_eq!(
                    (got.0 - offset, got.1),
                    *w,
                    "{pad}, publisher {round}, packet {i}: DTS and composition time"
                );
            }
            offsets.push((round, offset));
        }
        assert!(
            frames[n].discont,
            "{pad}: the second publisher's first buffer is DISCONT"
        );
    }
    let first: Vec<i64> = offsets.iter().filter(|o| o.0 == 0).map(|o| o.1).collect();
    let second: Vec<i64> = offsets.iter().filter(|o| o.0 == 1).map(|o| o.1).collect();
    assert!(
        first.windows(2).all(|w| w[0] == w[1]),
        "one offset per publisher: {offsets:?}"
    );
    assert!(
        second.windows(2).all(|w| w[0] == w[1]),
        "one offset per publisher: {offsets:?}"
    );
    let last_first = want.times.values().flatten().map(|t| t.0).max().unwrap() + first[0];
    assert!(
        second[0] + want.times.values().flatten().map(|t| t.0).min().unwrap() > last_first,
        "the second publisher continues after the first: {offsets:?}"
    );
}

// ---- hand-made Enhanced FLV: what no encoder here writes, and hostile input ----------------

mod handmade {
    use super::*;
    use bytes::BytesMut;
    use gstrsrtmp::rtmp::codecs::{ColorInfo, Mdcv};
    use gstrsrtmp::rtmp::eflv::{self, Codec, Packet, PacketKind};
    use gstrsrtmp::rtmp::flv::{self, AudioCodec, FourCc, VideoCodec};
    use gstrsrtmp::rtmp::{amf0, codecs};

    const HEVC: Codec = Codec::Video(VideoCodec::FourCc(FourCc::HVC1));
    const AVC: Codec = Codec::Video(VideoCodec::Legacy(7));
    const OPUS: Codec = Codec::Audio(AudioCodec::FourCc(FourCc::OPUS));

    fn packet(track: u8, codec: Codec, kind: PacketKind, key: bool, data: &[u8]) -> Vec<u8> {
        let p = Packet {
            track,
            codec,
            kind,
            frame_type: if key { 1 } else { 2 },
            composition_time: 0,
            nanos: 0,
            legacy_audio: None,
            multitrack: false,
            data,
        };
        let mut out = BytesMut::new();
        eflv::write_packet(&p, &mut out).unwrap();
        out.to_vec()
    }

    /// An FLV file of `tags` (tag type, timestamp, body).
    fn file(tags: &[(u8, u32, Vec<u8>)]) -> PathBuf {
        let mut out = BytesMut::new();
        flv::write_header(&flv::FlvHeader::new(true, true), &mut out);
        for (tag_type, ts, body) in tags {
            let tag = flv::Tag {
                tag_type: *tag_type,
                timestamp: *ts,
                stream_id: 0,
                data: bytes::Bytes::copy_from_slice(body),
            };
            flv::write_tag(&tag, &mut out).unwrap();
        }
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let path = media_dir().join(format!(
            "handmade-{}-{}.flv",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        ));
        std::fs::write(&path, &out).unwrap();
        path
    }

    /// Demuxes `path` with rsflvdemux to EOS; returns the pads and the warnings posted.
    fn demux_warnings(path: &Path) -> (Pads, Vec<String>) {
        init_gst();
        let p = pipeline(&format!(
            "filesrc location={} ! rsflvdemux name=d",
            path.display()
        ));
        let pads = attach(&p, "d");
        p.set_state(gst::State::Playing).unwrap();
        let bus = p.bus().unwrap();
        let mut warnings = Vec::new();
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            assert!(std::time::Instant::now() < deadline, "no EOS in time");
            let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(500)) else {
                continue;
            };
            match msg.view() {
                gst::MessageView::Eos(_) => break,
                gst::MessageView::Error(e) => panic!("error: {} ({:?})", e.error(), e.debug()),
                gst::MessageView::Warning(w) => warnings.push(w.error().to_string()),
                _ => {}
            }
        }
        drop(p);
        let _ = std::fs::remove_file(path);
        let pads = pads.lock().unwrap().clone();
        (pads, warnings)
    }

    fn video(ts: u32, body: Vec<u8>) -> (u8, u32, Vec<u8>) {
        (flv::TAG_TYPE_VIDEO, ts, body)
    }

    fn audio(ts: u32, body: Vec<u8>) -> (u8, u32, Vec<u8>) {
        (flv::TAG_TYPE_AUDIO, ts, body)
    }

    /// HDR colorInfo becomes colorimetry, mastering-display-info and content-light-level; a
    /// new HEVC configuration record mid-stream becomes new caps with the new codec_data.
    #[test]
    fn color_info_and_a_new_sequence_header_become_caps() {
        let color = ColorInfo {
            bit_depth: Some(10),
            primaries: Some(9),
            transfer: Some(16),
            matrix: Some(9),
            cll: Some((1000, 400)),
            mdcv: Some(Mdcv {
                primaries: [(0.68, 0.32), (0.265, 0.69), (0.15, 0.06)],
                white_point: (0.3127, 0.329),
                max_luminance: 1000.0,
                min_luminance: 0.0001,
            }),
        };
        let mut amf = BytesMut::new();
        for v in color.to_amf() {
            amf0::encode(&v, &mut amf);
        }
        let tags = vec![
            video(
                0,
                packet(0, HEVC, PacketKind::SequenceStart, true, b"record A"),
            ),
            video(0, packet(0, HEVC, PacketKind::Metadata, true, &amf)),
            video(
                0,
                packet(0, HEVC, PacketKind::CodedFrames, true, b"frame 0"),
            ),
            video(
                33,
                packet(0, HEVC, PacketKind::CodedFrames, false, b"frame 1"),
            ),
            video(
                66,
                packet(0, HEVC, PacketKind::SequenceStart, true, b"record B"),
            ),
            video(
                66,
                packet(0, HEVC, PacketKind::CodedFrames, true, b"frame 2"),
            ),
        ];
        let (pads, warnings) = demux_warnings(&file(&tags));
        assert!(warnings.is_empty(), "{warnings:?}");
        let log = &pads["video"];
        assert_eq!(log.frames.len(), 3);
        assert_eq!(log.caps.len(), 2, "{:?}", log.caps);
        let first = log.caps[0].structure(0).unwrap();
        let colorimetry: gst_video::VideoColorimetry =
            first.get::<&str>("colorimetry").unwrap().parse().unwrap();
        assert_eq!(colorimetry.matrix(), gst_video::VideoColorMatrix::Bt2020);
        assert_eq!(
            colorimetry.transfer(),
            gst_video::VideoTransferFunction::Smpte2084
        );
        assert_eq!(
            colorimetry.primaries(),
            gst_video::VideoColorPrimaries::Bt2020
        );
        let mdi = gst_video::VideoMasteringDisplayInfo::from_caps(&log.caps[0]).unwrap();
        assert_eq!(mdi.max_display_mastering_luminance(), 1000 * 10000);
        assert_eq!(mdi.white_point().x, (0.3127f32 * 50000.0) as u16);
        let cll = gst_video::VideoContentLightLevel::from_caps(&log.caps[0]).unwrap();
        assert_eq!(
            (
                cll.max_content_light_level(),
                cll.max_frame_average_light_level()
            ),
            (1000, 400)
        );
        let data = |i: usize| {
            log.caps[i]
                .structure(0)
                .unwrap()
                .get::<gst::Buffer>("codec_data")
                .unwrap()
                .map_readable()
                .unwrap()
                .to_vec()
        };
        assert_eq!(data(0), b"record A");
        assert_eq!(data(1), b"record B");
        // The HDR fields stay with the new record.
        assert!(
            log.caps[1]
                .structure(0)
                .unwrap()
                .has_field("mastering-display-info")
        );
    }

    /// ModEx nanosecond offsets are honoured; a ManyTracks message gives every track its
    /// packet; tracks of the same codec go to their own pads.
    #[test]
    fn many_tracks_and_nanosecond_offsets() {
        let mut body = BytesMut::new();
        let p = |track, data: &'static [u8]| Packet {
            track,
            codec: HEVC,
            kind: PacketKind::CodedFrames,
            frame_type: 1,
            composition_time: if track == 0 { 0 } else { 33 },
            nanos: 500_000,
            legacy_audio: None,
            multitrack: true,
            data,
        };
        eflv::write_tracks(&[p(0, b"track 0"), p(1, b"track 1")], &mut body).unwrap();
        let mut seq = BytesMut::new();
        eflv::write_tracks(
            &[
                Packet {
                    kind: PacketKind::SequenceStart,
                    nanos: 0,
                    ..p(0, b"rec 0")
                },
                Packet {
                    kind: PacketKind::SequenceStart,
                    nanos: 0,
                    ..p(1, b"rec 1")
                },
            ],
            &mut seq,
        )
        .unwrap();
        let tags = vec![video(0, seq.to_vec()), video(40, body.to_vec())];
        let (pads, warnings) = demux_warnings(&file(&tags));
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(pads.keys().collect::<Vec<_>>(), ["video", "video_1"]);
        assert_eq!(pads["video"].frames[0].pts_ns, Some(40_500_000));
        assert_eq!(pads["video_1"].frames[0].pts_ns, Some(73_500_000));
        assert_eq!(pads["video_1"].frames[0].size, b"track 1".len());
    }

    /// Hostile tags (truncated, absurd track counts, nested multitrack, unknown FourCCs,
    /// empty records) cost only themselves: every good frame of the good tracks comes out,
    /// the stream ends with EOS, and the warnings name what was dropped.
    #[test]
    fn hostile_tags_cost_only_themselves() {
        let opus_head = codecs::OpusHead::simple(2, 48000).to_bytes();
        let mut tags = vec![
            video(0, packet(0, AVC, PacketKind::SequenceStart, true, b"avcC")),
            audio(
                0,
                packet(0, OPUS, PacketKind::SequenceStart, true, &opus_head),
            ),
            // An unknown FourCC on track 2: dropped with a warning.
            video(
                0,
                packet(
                    2,
                    Codec::Video(VideoCodec::FourCc(FourCc(*b"abcd"))),
                    PacketKind::SequenceStart,
                    true,
                    b"?",
                ),
            ),
        ];
        let mut good = 0;
        for i in 0..20u32 {
            let ts = i * 20;
            tags.push(video(
                ts,
                packet(0, AVC, PacketKind::CodedFrames, i == 0, b"picture"),
            ));
            tags.push(audio(
                ts,
                packet(0, OPUS, PacketKind::CodedFrames, true, b"opus"),
            ));
            good += 1;
            let hostile: Vec<u8> = match i % 10 {
                0 => vec![0x96], // multitrack, nothing after
                1 => vec![0x96, 0x11, b'h', b'v', b'c', b'1', 0, 0xff, 0xff, 0xff], // size past the end
                2 => vec![0x96, 0x36, b'h', b'v', b'c', b'1'], // nested multitrack
                3 => vec![0x96, 0x31, b'h', b'v', b'c', b'1'], // AvMultitrackType 3
                4 => vec![0x97, 0xff],                         // ModEx cut short
                5 => {
                    // 300 empty tracks in one message.
                    let mut v = vec![0x96, 0x11, b'h', b'v', b'c', b'1'];
                    for t in 0..300u32 {
                        v.extend_from_slice(&[(t % 256) as u8, 0, 0, 0]);
                    }
                    v
                }
                6 => packet(0, HEVC, PacketKind::SequenceStart, true, b""), // empty record
                7 => packet(
                    3,
                    Codec::Video(VideoCodec::FourCc(FourCc(*b"zzzz"))),
                    PacketKind::CodedFrames,
                    true,
                    b"x",
                ),
                8 => vec![0x9f, b'h', b'v', b'c', b'1'], // reserved packet type 15
                _ => vec![0x17],                         // legacy AVC without packet type
            };
            tags.push(video(ts, hostile));
            tags.push(audio(ts, vec![0x95, 0x05]));
            tags.push((flv::TAG_TYPE_SCRIPT, ts, vec![0x02, 0xff, 0xff]));
        }
        let (pads, warnings) = demux_warnings(&file(&tags));
        assert_eq!(pads.keys().collect::<Vec<_>>(), ["audio", "video"]);
        assert_eq!(pads["video"].frames.len(), good);
        assert_eq!(pads["audio"].frames.len(), good);
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("video track 2") && w.contains("'abcd'")),
            "{warnings:?}"
        );
        assert!(
            warnings.iter().any(|w| w.contains("does not parse")),
            "{warnings:?}"
        );
    }
}

/// `playbin uri=rtmp://…` on GStreamer 1.22 plays an HEVC + Opus stream: rtmpclientsrc, then
/// rsflvdemux (ranked above flvdemux), then GStreamer's decoders; every video frame is
/// decoded, audio too.
#[test]
fn playbin_plays_hevc_and_opus_over_rtmp() {
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
    let want = ffmpeg9_framecrc(&path);
    init_gst();
    let relay = pipeline(
        "rtmpserversrc name=src address=127.0.0.1 port=0 stream=in eos-on-unpublish=true ! \
         rtmpserversink address=127.0.0.1 port=0 stream=out name=sink",
    );
    // Both elements on one port: the sink joins the source's.
    relay.set_state(gst::State::Playing).unwrap();
    let port: u32 = relay.by_name("src").unwrap().property("port");
    drop(relay);
    let relay = pipeline(&format!(
        "rtmpserversrc address=127.0.0.1 port={port} stream=in eos-on-unpublish=true ! \
         rtmpserversink address=127.0.0.1 port={port} stream=out name=sink"
    ));
    let sink = relay.by_name("sink").unwrap();
    let (connected, _) = common::server_peers::count_clients(&sink);
    relay.set_state(gst::State::Playing).unwrap();

    let fakesink = |name: &str| {
        gst::ElementFactory::make("fakesink")
            .name(name)
            .build()
            .unwrap()
    };
    let playbin = gst::ElementFactory::make("playbin")
        .property("uri", format!("rtmp://127.0.0.1:{port}/live/out"))
        .property("video-sink", fakesink("vsink"))
        .property("audio-sink", fakesink("asink"))
        .build()
        .unwrap();
    let player = common::PipelineGuard(playbin.clone().downcast::<gst::Pipeline>().unwrap());
    let demuxers = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = demuxers.clone();
    playbin
        .downcast_ref::<gst::Bin>()
        .unwrap()
        .connect_deep_element_added(move |_, _, element| {
            if let Some(f) = element.factory()
                && f.metadata("klass").is_some_and(|k| k.contains("Demuxer"))
            {
                seen.lock().unwrap().push(f.name().to_string());
            }
        });
    let counters: Vec<_> = ["video-sink", "audio-sink"]
        .iter()
        .map(|prop| {
            let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let c = counter.clone();
            playbin
                .property::<gst::Element>(prop)
                .static_pad("sink")
                .unwrap()
                .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                    c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    gst::PadProbeReturn::Ok
                });
            counter
        })
        .collect();
    player.set_state(gst::State::Playing).unwrap();
    common::server_peers::wait_until("the player", DEADLINE, || {
        connected.load(std::sync::atomic::Ordering::SeqCst) == 1
    });
    let mut publisher = common::ChildGuard::spawn(
        "FFmpeg 9 publisher",
        Command::new(common::ffmpeg9())
            .args(["-nostdin", "-loglevel", "error", "-re", "-i"])
            .arg(&path)
            .args(["-map", "0", "-c", "copy", "-f", "flv"])
            .arg(format!("rtmp://127.0.0.1:{port}/live/in"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped()),
    );
    let status = publisher.wait_timeout(DEADLINE);
    assert!(status.success(), "publisher: {}", publisher.stderr_text());
    common::wait_end(&player, DEADLINE).expect_eos();
    player.set_state(gst::State::Null).unwrap();
    assert_eq!(*demuxers.lock().unwrap(), ["rsflvdemux"]);
    let frames = counters[0].load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        frames as usize,
        want.packets[&0].len(),
        "decoded video frames"
    );
    assert!(
        counters[1].load(std::sync::atomic::Ordering::SeqCst) > 0,
        "decoded audio"
    );
}

/// Seeking in a file: a flushing seek to 2.5 s (after a full play, so from the index, and on
/// a fresh pipeline, past what was read) starts every pad again at the keyframe of 2.0 s,
/// with a segment starting at 2.5 s, and goes on to EOS (flvdemux, for comparison, starts
/// at a keyframe at or before that one).
#[test]
fn seeks_start_at_the_keyframe_before_the_target() {
    let path = ffmpeg9_media(
        "e-h264-aac-4s.flv",
        4,
        &[
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast", "-c:a", "aac",
        ],
    );
    let want = ffmpeg9_framecrc(&path);
    let from_2s = want.times[&0].iter().filter(|t| t.0 >= 2000).count();
    for (demuxer, play_first) in [
        ("flvdemux", false),
        ("rsflvdemux", true),
        ("rsflvdemux", false),
    ] {
        init_gst();
        let p = pipeline(&format!(
            "filesrc location={} ! {demuxer} name=d",
            path.display()
        ));
        let pads = attach(&p, "d");
        if play_first {
            p.set_state(gst::State::Playing).unwrap();
            common::wait_end(&p, DEADLINE).expect_eos();
        } else {
            p.set_state(gst::State::Paused).unwrap();
            let (res, _, _) = p.state(gst::ClockTime::from_seconds(DEADLINE.as_secs()));
            res.unwrap();
        }
        // Both pads exist (they come with the first frames; in PAUSED the appsinks only
        // preroll, so count the demuxer's pads).
        let d = p.by_name("d").unwrap();
        common::server_peers::wait_until("both pads", DEADLINE, || d.src_pads().len() == 2);
        pads.lock().unwrap().clear();
        p.seek_simple(
            gst::SeekFlags::FLUSH | gst::SeekFlags::ACCURATE,
            gst::ClockTime::from_mseconds(2500),
        )
        .unwrap_or_else(|e| panic!("{demuxer}: seek refused: {e}"));
        p.set_state(gst::State::Playing).unwrap();
        common::wait_end(&p, DEADLINE).expect_eos();
        let _ = p.set_state(gst::State::Null);
        let pads = pads.lock().unwrap().clone();
        let video = &pads["video"].frames;
        assert!(!video[0].delta, "{demuxer}: a keyframe first");
        if demuxer == "flvdemux" {
            // flvdemux starts at a keyframe at or before the target (here an earlier one).
            assert!(video[0].dts_ms.unwrap() <= 2000, "flvdemux: {:?}", video[0]);
            continue;
        }
        assert_eq!(
            video[0].dts_ms,
            Some(2000),
            "{demuxer}: first frame after the seek"
        );
        assert_eq!(video.len(), from_2s, "{demuxer}: every frame from 2.0 s on");
        let audio = &pads["audio"].frames;
        assert!(
            audio[0].pts_ms.unwrap() <= 2500 && audio[0].pts_ms.unwrap() >= 1900,
            "{demuxer}: audio after the seek starts at {:?}",
            audio[0].pts_ms
        );
    }
}
