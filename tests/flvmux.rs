//! rsflvmux: GStreamer encoders → rsflvmux → a file FFmpeg 9 reads. Every frame the encoders
//! handed the muxer must arrive in FFmpeg as a packet of a stream with the right codec, and
//! FFmpeg must decode them. Also what the FLV itself says: legacy tags for H.264/AAC/MP3 on
//! track 0, onMetaData codec ids and track maps, HDR colorInfo, the header set in the caps,
//! a new SequenceStart after a caps change, ManyTracks and ModEx only when asked, and errors
//! that name the pad, the caps field and its value.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gst::prelude::*;
use gstrsrtmp::rtmp::amf0::{self, Value};
use gstrsrtmp::rtmp::eflv::{self, Codec, PacketKind};
use gstrsrtmp::rtmp::flv::{self, AudioCodec, FlvItem, FlvParser, FourCc, VideoCodec};

use common::{FrameCrc, TempDir, ffmpeg9, ffmpeg9_framecrc};

/// Ends a hung test; never a timing assertion.
const DEADLINE: Duration = Duration::from_secs(60);

const VIDEO: &str = "videotestsrc num-buffers=30 ! \
                     video/x-raw,format=I420,width=320,height=240,framerate=30/1";
const AUDIO: &str = "audiotestsrc num-buffers=40 samplesperbuffer=1024 ! audio/x-raw,rate=48000";

fn hevc() -> String {
    format!("{VIDEO} ! x265enc speed-preset=ultrafast key-int-max=30 ! h265parse")
}

fn h264() -> String {
    format!("{VIDEO} ! x264enc speed-preset=ultrafast bframes=2 key-int-max=30 ! h264parse")
}

fn av1() -> String {
    format!(
        "{VIDEO} ! av1enc cpu-used=8 usage-profile=realtime keyframe-max-dist=30 \
         target-bitrate=200 ! av1parse"
    )
}

fn vp9() -> String {
    format!("{VIDEO} ! vp9enc deadline=1 cpu-used=8 keyframe-max-dist=30 ! vp9parse")
}

fn aac() -> String {
    format!("{AUDIO} ! audioconvert ! voaacenc ! aacparse")
}

/// One input: the pad it goes to, the gst-launch chain that feeds it, and the codec name
/// FFmpeg should report for it.
struct Input {
    pad: &'static str,
    chain: String,
    codec: &'static str,
}

fn input(pad: &'static str, chain: impl Into<String>, codec: &'static str) -> Input {
    Input {
        pad,
        chain: chain.into(),
        codec,
    }
}

/// A muxed file and how many buffers each pad took in.
struct Muxed {
    _dir: TempDir,
    path: PathBuf,
    counts: BTreeMap<&'static str, u64>,
}

fn counter(pad: &gst::Pad) -> Arc<AtomicU64> {
    let n = Arc::new(AtomicU64::new(0));
    let c = n.clone();
    pad.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
        // FLAC's and Opus's header packets repeat the caps' streamheader: no frames.
        let in_caps = pad.current_caps().is_some_and(|c| {
            c.structure(0)
                .is_some_and(|s| s.name() == "audio/x-flac" || s.name() == "audio/x-opus")
        });
        if !(in_caps
            && info
                .buffer()
                .is_some_and(|b| b.flags().contains(gst::BufferFlags::HEADER)))
        {
            c.fetch_add(1, Ordering::SeqCst);
        }
        gst::PadProbeReturn::Ok
    });
    n
}

/// Runs `inputs` into `rsflvmux {props} ! filesink` to EOS.
fn mux(name: &str, props: &str, inputs: &[Input]) -> Muxed {
    common::init_gst();
    let dir = TempDir::new(name);
    let path = dir.path().join("out.flv");
    let mut desc = format!(
        "rsflvmux name=mux {props} ! filesink location={}",
        path.display()
    );
    for i in inputs {
        desc.push_str(&format!(" {} ! mux.{}", i.chain, i.pad));
    }
    let p = common::pipeline(&desc);
    let mux = p.by_name("mux").expect("mux");
    let counters: Vec<_> = inputs
        .iter()
        .map(|i| {
            let pad = mux
                .static_pad(i.pad)
                .unwrap_or_else(|| panic!("no pad {}", i.pad));
            (i.pad, counter(&pad))
        })
        .collect();
    common::run(&p, DEADLINE).expect_eos();
    let counts = counters
        .into_iter()
        .map(|(pad, n)| (pad, n.load(Ordering::SeqCst)))
        .collect();
    Muxed {
        _dir: dir,
        path,
        counts,
    }
}

/// FFmpeg 9's streams of `path`, in index order: (Video/Audio, codec name).
fn ffmpeg_streams(path: &Path) -> Vec<(String, String)> {
    let out = Command::new(ffmpeg9())
        .args(["-nostdin", "-hide_banner", "-i"])
        .arg(path)
        .output()
        .expect("run FFmpeg 9");
    let text = String::from_utf8_lossy(&out.stderr);
    let streams: Vec<(String, String)> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("Stream #0:"))
        .filter_map(|l| {
            let (_, rest) = l.split_once("): ").or_else(|| l.split_once(": "))?;
            let rest = rest.trim_start_matches(|c: char| c != 'V' && c != 'A');
            let (kind, rest) = rest.split_once(": ")?;
            let codec = rest.split([' ', ',']).next()?.to_string();
            Some((kind.to_string(), codec))
        })
        .collect();
    assert!(!streams.is_empty(), "FFmpeg 9 found no streams:\n{text}");
    streams
}

/// FFmpeg 9 decodes every stream of `path` (framecrc of the decoded frames).
fn ffmpeg_decode(path: &Path) -> FrameCrc {
    let out = Command::new(ffmpeg9())
        .args(["-nostdin", "-loglevel", "error", "-i"])
        .arg(path)
        .args(["-map", "0", "-f", "framecrc", "-"])
        .output()
        .expect("run FFmpeg 9");
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "FFmpeg 9 could not decode {}: {errors}",
        path.display()
    );
    FrameCrc::parse(&String::from_utf8_lossy(&out.stdout))
}

/// Every buffer each pad took in is a packet of a stream with the input's codec, and FFmpeg
/// decodes every video packet into a frame and every audio stream into frames.
fn check_every_frame(m: &Muxed, inputs: &[Input]) {
    let streams = ffmpeg_streams(&m.path);
    let crc = ffmpeg9_framecrc(&m.path);
    let mut want: Vec<(String, u64)> = inputs
        .iter()
        .map(|i| (i.codec.to_string(), m.counts[i.pad]))
        .collect();
    let mut got: Vec<(String, u64)> = streams
        .iter()
        .enumerate()
        .map(|(idx, (_, codec))| {
            let n = crc.packets.get(&(idx as u32)).map_or(0, Vec::len);
            (codec.clone(), n as u64)
        })
        .collect();
    want.sort();
    got.sort();
    eprintln!("pads {:?}; FFmpeg streams {streams:?}", m.counts);
    assert!(
        want.iter().all(|(_, n)| *n > 0),
        "an encoder gave nothing: {want:?}"
    );
    assert_eq!(
        got, want,
        "(codec, packets) per FFmpeg stream vs (codec, buffers) per pad"
    );
    let decoded = ffmpeg_decode(&m.path);
    for (idx, (kind, codec)) in streams.iter().enumerate() {
        let idx = idx as u32;
        let packets = crc.packets[&idx].len();
        let frames = decoded.packets.get(&idx).map_or(0, Vec::len);
        if kind == "Video" {
            assert_eq!(
                frames, packets,
                "stream {idx} ({codec}): decoded video frames"
            );
        } else {
            // Audio decoders may keep a priming frame back; every packet decodes otherwise.
            assert!(
                frames + 2 >= packets && frames > 0,
                "stream {idx} ({codec}): {frames} decoded of {packets} packets"
            );
        }
    }
}

/// The tags of an FLV file.
fn read_tags(path: &Path) -> Vec<flv::Tag> {
    let data = std::fs::read(path).expect("read the FLV");
    let mut parser = FlvParser::new();
    parser.push(&data);
    let mut tags = Vec::new();
    while let Some(item) = parser.next_item().expect("valid FLV") {
        if let FlvItem::Tag(t) = item {
            tags.push(t);
        }
    }
    parser.finish().expect("no trailing bytes");
    assert_eq!(parser.prev_tag_size_mismatches(), 0);
    tags
}

/// The onMetaData object of an FLV file.
fn on_metadata(tags: &[flv::Tag]) -> Value {
    let tag = tags
        .iter()
        .find(|t| t.tag_type == flv::TAG_TYPE_SCRIPT)
        .expect("a script tag");
    let values = amf0::decode_all(&tag.data).expect("AMF0");
    assert_eq!(values[0].as_str(), Some("onMetaData"));
    values[1].clone()
}

fn num(v: &Value, key: &str) -> f64 {
    v.get(key)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("no number {key} in {v:?}"))
}

/// (track, codec, packet kind) of every audio/video packet in the tags, in order.
fn packets(tags: &[flv::Tag]) -> Vec<(u8, Codec, PacketKind)> {
    let mut out = Vec::new();
    for t in tags {
        let parsed = eflv::parse_tag(t.tag_type, &t.data).expect("a valid tag body");
        out.extend(parsed.packets.iter().map(|p| (p.track, p.codec, p.kind)));
    }
    out
}

fn fourcc_video(f: FourCc) -> Codec {
    Codec::Video(VideoCodec::FourCc(f))
}

fn fourcc_audio(f: FourCc) -> Codec {
    Codec::Audio(AudioCodec::FourCc(f))
}

#[test]
fn h264_and_aac_on_track_0_are_legacy_tags() {
    let inputs = [input("video", h264(), "h264"), input("audio", aac(), "aac")];
    let m = mux("mux-h264-aac", "", &inputs);
    check_every_frame(&m, &inputs);
    let tags = read_tags(&m.path);
    let meta = on_metadata(&tags);
    assert_eq!(num(&meta, "videocodecid"), 7.0);
    assert_eq!(num(&meta, "audiocodecid"), 10.0);
    assert!(meta.get("videoTrackIdInfoMap").is_none());
    for t in &tags {
        match t.tag_type {
            flv::TAG_TYPE_VIDEO => assert!(
                matches!(t.data[0], 0x17 | 0x27),
                "legacy AVC tag, got first byte {:#04x}",
                t.data[0]
            ),
            flv::TAG_TYPE_AUDIO => assert_eq!(t.data[0], 0xAF, "legacy AAC tag"),
            _ => {}
        }
    }
    // B-frames: some tags carry a composition time.
    assert!(
        tags.iter()
            .any(|t| t.tag_type == 9 && t.data[1] == 1 && t.data[2..5] != [0, 0, 0]),
        "no composition time in any H.264 tag"
    );
    // Tag timestamps start at 0 and never go backwards.
    let ts: Vec<u32> = tags.iter().map(|t| t.timestamp).collect();
    assert_eq!(ts[0], 0);
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{ts:?}");
}

#[test]
fn hevc_and_opus() {
    let inputs = [
        input("video", hevc(), "hevc"),
        input(
            "audio",
            format!("{AUDIO} ! audioconvert ! opusenc ! opusparse"),
            "opus",
        ),
    ];
    let m = mux("mux-hevc-opus", "", &inputs);
    check_every_frame(&m, &inputs);
    let tags = read_tags(&m.path);
    let meta = on_metadata(&tags);
    assert_eq!(num(&meta, "videocodecid"), f64::from(FourCc::HVC1.as_u32()));
    assert_eq!(num(&meta, "audiocodecid"), f64::from(FourCc::OPUS.as_u32()));
    let p = packets(&tags);
    assert!(p.contains(&(0, fourcc_video(FourCc::HVC1), PacketKind::SequenceStart)));
    assert!(p.contains(&(0, fourcc_audio(FourCc::OPUS), PacketKind::SequenceStart)));
    // HEVC keyframes and P-frames without B-frames go as CodedFramesX (0x93 / 0xA3).
    assert!(
        tags.iter()
            .any(|t| t.tag_type == 9 && matches!(t.data[0], 0x93 | 0xA3)),
        "no CodedFramesX"
    );
}

#[test]
fn av1_and_flac() {
    let inputs = [
        input("video", av1(), "av1"),
        input(
            "audio",
            format!("{AUDIO} ! audioconvert ! flacenc ! flacparse"),
            "flac",
        ),
    ];
    let m = mux("mux-av1-flac", "", &inputs);
    check_every_frame(&m, &inputs);
    let tags = read_tags(&m.path);
    let mut saw_frame = false;
    for t in &tags {
        let parsed = eflv::parse_tag(t.tag_type, &t.data).unwrap();
        for p in &parsed.packets {
            match (p.codec, p.kind) {
                (c, PacketKind::SequenceStart) if c == fourcc_video(FourCc::AV01) => {
                    assert_eq!(p.data[0], 0x81, "av1C marker");
                }
                (c, PacketKind::SequenceStart) if c == fourcc_audio(FourCc::FLAC) => {
                    assert_eq!(p.data.len(), 34, "bare STREAMINFO");
                }
                (c, PacketKind::CodedFrames) if c == fourcc_video(FourCc::AV01) => {
                    saw_frame = true;
                    // Temporal delimiters stripped, as OBS sends AV1.
                    assert_ne!(p.data[0] >> 3 & 0x0f, 2, "a TD OBU first");
                }
                _ => {}
            }
        }
    }
    assert!(saw_frame);
}

#[test]
fn vp9_and_mp3() {
    let inputs = [
        input("video", vp9(), "vp9"),
        input(
            "audio",
            format!("{AUDIO} ! audioconvert ! lamemp3enc ! mpegaudioparse"),
            "mp3",
        ),
    ];
    let m = mux("mux-vp9-mp3", "", &inputs);
    check_every_frame(&m, &inputs);
    let tags = read_tags(&m.path);
    let meta = on_metadata(&tags);
    assert_eq!(num(&meta, "audiocodecid"), 2.0, "legacy MP3 on track 0");
    for t in tags.iter().filter(|t| t.tag_type == flv::TAG_TYPE_AUDIO) {
        assert_eq!(t.data[0] >> 4, 2, "legacy MP3 SoundFormat");
    }
    let record = packets(&tags)
        .into_iter()
        .position(|(_, c, k)| c == fourcc_video(FourCc::VP09) && k == PacketKind::SequenceStart);
    assert!(record.is_some(), "a vp09 SequenceStart");
}

#[test]
fn ac3_and_eac3_as_two_audio_tracks() {
    let inputs = [
        input(
            "audio",
            format!("{AUDIO} ! audioconvert ! avenc_ac3 ! ac3parse"),
            "ac3",
        ),
        input(
            "audio_1",
            format!("{AUDIO} ! audioconvert ! avenc_eac3 ! ac3parse"),
            "eac3",
        ),
    ];
    let m = mux("mux-ac3-eac3", "", &inputs);
    check_every_frame(&m, &inputs);
    let tags = read_tags(&m.path);
    let meta = on_metadata(&tags);
    assert_eq!(num(&meta, "audiocodecid"), f64::from(FourCc::AC3.as_u32()));
    let map = meta.get("audioTrackIdInfoMap").expect("a track map");
    let one = map.get("1").expect("track 1 in the map");
    assert_eq!(num(one, "audiocodecid"), f64::from(FourCc::EAC3.as_u32()));
    let p = packets(&tags);
    assert!(p.contains(&(1, fourcc_audio(FourCc::EAC3), PacketKind::SequenceStart)));
    assert!(p.contains(&(1, fourcc_audio(FourCc::EAC3), PacketKind::CodedFrames)));
}

#[test]
fn h264_with_two_aac_tracks() {
    let inputs = [
        input("video", h264(), "h264"),
        input("audio", aac(), "aac"),
        input("audio_1", aac(), "aac"),
    ];
    let m = mux("mux-h264-2aac", "", &inputs);
    check_every_frame(&m, &inputs);
    let tags = read_tags(&m.path);
    let meta = on_metadata(&tags);
    assert_eq!(num(&meta, "audiocodecid"), 10.0);
    let one = meta
        .get("audioTrackIdInfoMap")
        .and_then(|m| m.get("1"))
        .expect("track 1 in the audio map");
    assert_eq!(num(one, "audiocodecid"), f64::from(FourCc::MP4A.as_u32()));
    let p = packets(&tags);
    assert!(p.contains(&(1, fourcc_audio(FourCc::MP4A), PacketKind::CodedFrames)));
    assert!(p.contains(&(
        0,
        Codec::Audio(AudioCodec::Legacy(10)),
        PacketKind::CodedFrames
    )));
}

#[test]
fn two_video_tracks_h264_and_hevc() {
    let inputs = [
        input("video", h264(), "h264"),
        input("video_1", hevc(), "hevc"),
        input("audio", aac(), "aac"),
    ];
    let m = mux("mux-2video", "", &inputs);
    check_every_frame(&m, &inputs);
    let tags = read_tags(&m.path);
    let meta = on_metadata(&tags);
    assert_eq!(num(&meta, "videocodecid"), 7.0);
    let one = meta
        .get("videoTrackIdInfoMap")
        .and_then(|m| m.get("1"))
        .expect("track 1 in the video map");
    assert_eq!(num(one, "videocodecid"), f64::from(FourCc::HVC1.as_u32()));
    assert_eq!(num(one, "width"), 320.0);
    let p = packets(&tags);
    assert!(p.contains(&(1, fourcc_video(FourCc::HVC1), PacketKind::CodedFrames)));
}

#[test]
fn h264_on_a_track_above_0_is_avc1() {
    let inputs = [input("video_2", h264(), "h264")];
    let m = mux("mux-avc1", "", &inputs);
    check_every_frame(&m, &inputs);
    let tags = read_tags(&m.path);
    let p = packets(&tags);
    assert!(p.contains(&(2, fourcc_video(FourCc::AVC1), PacketKind::SequenceStart)));
    assert!(p.contains(&(2, fourcc_video(FourCc::AVC1), PacketKind::CodedFrames)));
    let meta = on_metadata(&tags);
    assert!(meta.get("videocodecid").is_none(), "no track 0: {meta:?}");
    assert!(
        meta.get("videoTrackIdInfoMap")
            .and_then(|m| m.get("2"))
            .is_some()
    );
}

#[test]
fn vp8_is_vp08() {
    // FFmpeg does not read VP8 from FLV: check the tags themselves.
    let inputs = [input(
        "video",
        format!("{VIDEO} ! vp8enc deadline=1 cpu-used=16"),
        "vp8",
    )];
    let m = mux("mux-vp8", "", &inputs);
    let tags = read_tags(&m.path);
    let p = packets(&tags);
    let frames = p
        .iter()
        .filter(|(_, c, k)| *c == fourcc_video(FourCc::VP08) && *k == PacketKind::CodedFrames)
        .count() as u64;
    assert_eq!(frames, m.counts["video"]);
    assert!(p.contains(&(0, fourcc_video(FourCc::VP08), PacketKind::SequenceStart)));
}

#[test]
fn hdr_caps_become_color_info() {
    let inputs = [input(
        "video",
        "videotestsrc num-buffers=10 ! \
         video/x-raw,format=I420_10LE,width=320,height=240,framerate=30/1 ! \
         x265enc speed-preset=ultrafast ! h265parse ! \
         capssetter caps=\"video/x-h265,colorimetry=(string)bt2100-pq,\
         mastering-display-info=(string)35400:14600:8500:39850:6550:2300:15635:16450:10000000:50,\
         content-light-level=(string)1000:400\"",
        "hevc",
    )];
    let m = mux("mux-hdr", "", &inputs);
    check_every_frame(&m, &inputs);
    let tags = read_tags(&m.path);
    let mut color = None;
    for (i, t) in tags.iter().enumerate() {
        let parsed = eflv::parse_tag(t.tag_type, &t.data).unwrap();
        if let Some(p) = parsed
            .packets
            .iter()
            .find(|p| p.kind == PacketKind::Metadata)
        {
            assert_eq!(t.data[0], 0xD4, "Metadata as FFmpeg writes it");
            let values = amf0::decode_all(p.data).unwrap();
            color = Some((
                i,
                gstrsrtmp::rtmp::codecs::ColorInfo::from_amf(&values).unwrap(),
            ));
            break;
        }
    }
    let (at, color) = color.expect("a colorInfo Metadata frame");
    let first_frame = tags
        .iter()
        .position(|t| {
            eflv::parse_tag(t.tag_type, &t.data)
                .unwrap()
                .packets
                .iter()
                .any(|p| p.kind == PacketKind::CodedFrames)
        })
        .unwrap();
    assert!(at < first_frame, "colorInfo before the first frame");
    assert_eq!(
        (color.primaries, color.transfer, color.matrix),
        (Some(9), Some(16), Some(9))
    );
    assert_eq!(color.cll, Some((1000, 400)));
    let mdcv = color.mdcv.expect("mastering display");
    assert!((mdcv.max_luminance - 1000.0).abs() < 1e-6, "{mdcv:?}");
    // FFmpeg 9 takes the colour description from it.
    let out = Command::new(ffmpeg9())
        .args(["-nostdin", "-hide_banner", "-i"])
        .arg(&m.path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("bt2020nc/bt2020/smpte2084"), "{text}");
}

#[test]
fn many_tracks_and_nanosecond_offsets_when_asked() {
    // Two AAC tracks from one source share every timestamp; 30 fps video has
    // sub-millisecond DTS parts.
    let src = "audiotestsrc num-buffers=40 samplesperbuffer=1024 ! audio/x-raw,rate=48000 ! \
               audioconvert ! voaacenc ! aacparse ! tee name=t";
    common::init_gst();
    let dir = TempDir::new("mux-many");
    let path = dir.path().join("out.flv");
    let p = common::pipeline(&format!(
        "rsflvmux name=mux many-tracks=true timestamp-offset-nano=true ! \
         filesink location={} \
         {} ! mux.video_1 \
         {src} t. ! queue ! mux.audio_1 t. ! queue ! mux.audio_2",
        path.display(),
        hevc()
    ));
    let mux = p.by_name("mux").unwrap();
    let counts: Vec<_> = ["video_1", "audio_1", "audio_2"]
        .iter()
        .map(|n| counter(&mux.static_pad(n).unwrap()))
        .collect();
    common::run(&p, DEADLINE).expect_eos();
    let counts: Vec<u64> = counts.iter().map(|c| c.load(Ordering::SeqCst)).collect();
    let tags = read_tags(&path);
    let many = tags
        .iter()
        .filter(|t| t.tag_type == 8)
        .filter(|t| eflv::parse_tag(8, &t.data).unwrap().packets.len() == 2)
        .count() as u64;
    assert_eq!(
        many, counts[1],
        "every audio frame pair in one ManyTracks message"
    );
    let modex = tags
        .iter()
        .filter(|t| t.tag_type == 9 && t.data[0] & 0x0f == 7)
        .count();
    assert!(modex > 0, "no ModEx TimestampOffsetNano prefix");
    // Milliseconds plus the offset give the exact 30 fps DTS (videotestsrc: n × 1/30 s,
    // rounded down to the nanosecond).
    for t in tags.iter().filter(|t| t.tag_type == 9) {
        for p in eflv::parse_tag(9, &t.data).unwrap().packets {
            if p.kind != PacketKind::CodedFrames {
                continue;
            }
            let ns = u64::from(t.timestamp) * 1_000_000 + u64::from(p.nanos);
            let off = ns * 30 % 1_000_000_000;
            assert!(
                off == 0 || off > 1_000_000_000 - 30,
                "{} ms + {} ns is no frame time",
                t.timestamp,
                p.nanos
            );
        }
    }
    // FFmpeg 9 reads both layouts.
    let crc = ffmpeg9_framecrc(&path);
    let mut got: Vec<u64> = crc.packets.values().map(|v| v.len() as u64).collect();
    let mut want = counts.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want, "packets per stream");
}

#[test]
fn header_set_in_caps_and_flagged_buffers() {
    common::init_gst();
    let p = common::pipeline(&format!(
        "rsflvmux name=mux ! appsink name=out sync=false \
         {} ! mux.video {} ! mux.audio_1",
        hevc(),
        aac()
    ));
    let sink = p
        .by_name("out")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let mut buffers = Vec::new();
    let mut caps = None;
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(60)) {
        caps.get_or_insert_with(|| sample.caps().unwrap().to_owned());
        buffers.push(sample.buffer_owned().unwrap());
    }
    assert!(sink.is_eos(), "no EOS within the deadline");
    p.set_state(gst::State::Null).unwrap();
    let caps = caps.unwrap();
    let s = caps.structure(0).unwrap();
    assert_eq!(s.name(), "video/x-flv");
    let headers: Vec<gst::Buffer> = s
        .get::<gst::ArrayRef>("streamheader")
        .unwrap()
        .iter()
        .map(|v| v.get::<gst::Buffer>().unwrap())
        .collect();
    // FLV header, onMetaData, hvc1 SequenceStart + colorInfo, mp4a SequenceStart.
    assert!(headers.len() >= 4, "{} header buffers", headers.len());
    assert_eq!(&headers[0].map_readable().unwrap()[..3], b"FLV");
    for (i, h) in headers.iter().enumerate() {
        let b = &buffers[i];
        assert!(b.flags().contains(gst::BufferFlags::HEADER), "buffer {i}");
        assert_eq!(
            b.map_readable().unwrap().as_slice(),
            h.map_readable().unwrap().as_slice(),
            "output buffer {i} is header {i}"
        );
    }
    let frames = &buffers[headers.len()..];
    assert!(
        frames
            .iter()
            .all(|b| !b.flags().contains(gst::BufferFlags::HEADER))
    );
    let is_frame = |b: &gst::Buffer| {
        let map = b.map_readable().unwrap();
        let body = &map[flv::TAG_HEADER_LEN..map.len() - flv::PREV_TAG_SIZE_LEN];
        eflv::parse_tag(map[0], body)
            .unwrap()
            .packets
            .iter()
            .any(|p| p.kind == PacketKind::CodedFrames)
    };
    assert!(
        frames
            .iter()
            .filter(|b| is_frame(b))
            .all(|b| b.pts().is_some()),
        "frames carry PTS"
    );
    assert!(
        frames
            .iter()
            .any(|b| b.flags().contains(gst::BufferFlags::DELTA_UNIT)),
        "video inter frames flagged DELTA_UNIT"
    );
}

/// An appsrc pipeline into rsflvmux ! appsink: what the muxer made of `pushes` (caps, then
/// buffers), or the error it posted.
fn run_appsrc(
    pad: &str,
    pushes: Vec<Result<gst::Buffer, gst::Caps>>,
) -> Result<Vec<flv::Tag>, String> {
    common::init_gst();
    let p = common::pipeline(
        "appsrc name=src format=time  rsflvmux name=mux ! appsink name=out sync=false wait-on-eos=false",
    );
    // Linked to the pad asked for (gst-launch would pick one by caps).
    let src = p.by_name("src").unwrap();
    let mux = p.by_name("mux").unwrap();
    let sinkpad = mux.request_pad_simple(pad).unwrap();
    src.static_pad("src").unwrap().link(&sinkpad).unwrap();
    let appsrc = src.downcast::<gst_app::AppSrc>().unwrap();
    let sink = p
        .by_name("out")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    p.set_state(gst::State::Playing).unwrap();
    for push in pushes {
        match push {
            Ok(buf) => {
                let _ = appsrc.push_buffer(buf);
            }
            Err(caps) => appsrc.set_caps(Some(&caps)),
        }
    }
    let _ = appsrc.end_of_stream();
    let mut data = Vec::new();
    let bus = p.bus().unwrap();
    let end = bus
        .timed_pop_filtered(
            gst::ClockTime::from_seconds(DEADLINE.as_secs()),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        )
        .expect("EOS or an error within the deadline");
    if let gst::MessageView::Error(e) = end.view() {
        let text = format!("{} ({:?})", e.error(), e.debug());
        p.set_state(gst::State::Null).unwrap();
        return Err(text);
    }
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::ZERO) {
        data.extend_from_slice(&sample.buffer().unwrap().map_readable().unwrap());
    }
    p.set_state(gst::State::Null).unwrap();
    let mut parser = FlvParser::new();
    parser.push(&data);
    let mut tags = Vec::new();
    while let Some(item) = parser.next_item().unwrap() {
        if let FlvItem::Tag(t) = item {
            tags.push(t);
        }
    }
    Ok(tags)
}

fn buffer(data: &[u8], ms: u64, key: bool) -> gst::Buffer {
    let mut b = gst::Buffer::from_slice(data.to_vec());
    let m = b.get_mut().unwrap();
    m.set_pts(gst::ClockTime::from_mseconds(ms));
    m.set_dts(gst::ClockTime::from_mseconds(ms));
    m.set_duration(gst::ClockTime::from_mseconds(20));
    if !key {
        m.set_flags(gst::BufferFlags::DELTA_UNIT);
    }
    b
}

#[test]
fn a_new_codec_data_gives_a_new_sequence_start() {
    common::init_gst();
    let caps = |asc: &str| {
        Err(gst::Caps::from_str(&format!(
            "audio/mpeg,mpegversion=4,stream-format=raw,rate=48000,channels=2,codec_data=(buffer){asc}"
        ))
        .unwrap())
    };
    let frame = |ms| Ok(buffer(&[0x21, 0x10, 0x04], ms, true));
    let tags = run_appsrc(
        "audio_1",
        vec![
            caps("1190"),
            frame(0),
            frame(20),
            caps("1188"),
            frame(40),
            frame(60),
        ],
    )
    .expect("muxed");
    let mut records = Vec::new();
    let mut frames_after = Vec::new();
    for t in &tags {
        for p in eflv::parse_tag(t.tag_type, &t.data).unwrap().packets {
            match p.kind {
                PacketKind::SequenceStart => records.push((p.data.to_vec(), t.timestamp)),
                PacketKind::CodedFrames => frames_after.push(records.len()),
                _ => {}
            }
        }
    }
    assert_eq!(
        records,
        vec![(vec![0x11, 0x90], 0), (vec![0x11, 0x88], 40)],
        "one SequenceStart per codec_data, the second at the frame it precedes"
    );
    assert_eq!(frames_after, vec![1, 1, 2, 2]);
}

#[test]
fn caps_without_codec_data_name_the_pad_and_field() {
    let caps = gst::Caps::from_str("video/x-h264,stream-format=avc,alignment=au").unwrap();
    let err = run_appsrc(
        "video_1",
        vec![Err(caps), Ok(buffer(&[0, 0, 0, 1, 9], 0, true))],
    )
    .expect_err("an error");
    for needle in ["video_1", "codec_data", "missing", "avcC"] {
        assert!(err.contains(needle), "{needle:?} not in {err:?}");
    }
}

#[test]
fn av1_without_a_sequence_header_is_refused() {
    let caps = gst::Caps::from_str("video/x-av1,stream-format=obu-stream,alignment=tu").unwrap();
    // A temporal delimiter and a frame OBU (type 6), no sequence header.
    let tu = [0x12, 0x00, 0x32, 0x02, 0xaa, 0xbb];
    let err = run_appsrc("video", vec![Err(caps), Ok(buffer(&tu, 0, true))]).expect_err("an error");
    for needle in ["video", "sequence header", "6 bytes"] {
        assert!(err.contains(needle), "{needle:?} not in {err:?}");
    }
}

#[test]
fn track_pads_are_named_as_eflvmux_names_them() {
    common::init_gst();
    let mux = gst::ElementFactory::make("rsflvmux").build().unwrap();
    let v = mux.request_pad_simple("video").unwrap();
    assert_eq!(v.name(), "video");
    let next = mux.request_pad_simple("video_%u").unwrap();
    assert_eq!(next.name(), "video_1");
    let a3 = mux.request_pad_simple("audio_3").unwrap();
    assert_eq!(a3.name(), "audio_3");
    assert!(
        mux.request_pad_simple("video_0").is_none(),
        "track 0 is `video`"
    );
    assert!(mux.request_pad_simple("audio_256").is_none());
}

/// Raw 320x240 then 160x120 frames through `encoder` into rsflvmux: the resolution change
/// gives a new decoder configuration, which must go out as a new SequenceStart before the
/// first frame that needs it; FFmpeg decodes every frame of both halves.
fn resolution_change(name: &str, encoder: &str, codec: Codec) {
    common::init_gst();
    let dir = TempDir::new(name);
    let path = dir.path().join("out.flv");
    let p = common::pipeline(&format!(
        "appsrc name=src format=time ! videoconvert ! {encoder} ! mux.video \
         rsflvmux name=mux ! filesink location={}",
        path.display()
    ));
    let src = p
        .by_name("src")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    p.set_state(gst::State::Playing).unwrap();
    let mut n = 0u64;
    for (w, h) in [(320usize, 240usize), (160, 120)] {
        src.set_caps(Some(
            &gst::Caps::from_str(&format!(
                "video/x-raw,format=I420,width={w},height={h},framerate=30/1"
            ))
            .unwrap(),
        ));
        for _ in 0..10 {
            let mut b = gst::Buffer::from_slice(vec![(n * 20) as u8; w * h * 3 / 2]);
            let m = b.get_mut().unwrap();
            m.set_pts(gst::ClockTime::from_nseconds(n * 1_000_000_000 / 30));
            m.set_duration(gst::ClockTime::from_nseconds(1_000_000_000 / 30));
            src.push_buffer(b).unwrap();
            n += 1;
        }
    }
    src.end_of_stream().unwrap();
    common::wait_end(&p, DEADLINE).expect_eos();
    p.set_state(gst::State::Null).unwrap();

    let tags = read_tags(&path);
    let mut order = Vec::new();
    for t in &tags {
        for pk in eflv::parse_tag(t.tag_type, &t.data).unwrap().packets {
            if pk.codec == codec && pk.kind != PacketKind::Metadata {
                order.push(pk.kind);
            }
        }
    }
    let starts: Vec<usize> = order
        .iter()
        .enumerate()
        .filter(|(_, k)| **k == PacketKind::SequenceStart)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(starts.len(), 2, "{order:?}");
    assert_eq!(starts[0], 0, "the first SequenceStart before any frame");
    assert_eq!(starts[1], 11, "the second before the 11th frame: {order:?}");
    let decoded = ffmpeg_decode(&path);
    assert_eq!(
        decoded.packets[&0].len(),
        20,
        "decoded frames of both sizes"
    );
}

#[test]
fn av1_resolution_change_gives_a_new_sequence_start() {
    resolution_change(
        "mux-av1-resize",
        "av1enc cpu-used=8 usage-profile=realtime ! av1parse",
        fourcc_video(FourCc::AV01),
    );
}

#[test]
fn h264_resolution_change_gives_a_new_sequence_start() {
    resolution_change(
        "mux-h264-resize",
        "x264enc speed-preset=ultrafast tune=zerolatency ! h264parse",
        Codec::Video(VideoCodec::Legacy(7)),
    );
}

#[test]
fn timestamps_wrap_at_32_bits() {
    common::init_gst();
    let caps = gst::Caps::from_str(
        "audio/mpeg,mpegversion=4,stream-format=raw,rate=48000,channels=2,codec_data=(buffer)1190",
    )
    .unwrap();
    let frame = |ms| Ok(buffer(&[0x21, 0x10, 0x04], ms, true));
    let wrap = 1u64 << 32;
    let tags = run_appsrc(
        "audio",
        vec![Err(caps), frame(0), frame(wrap - 20), frame(wrap + 5)],
    )
    .expect("muxed");
    let mut ext = flv::TimestampExtender::new();
    let ts: Vec<u64> = tags
        .iter()
        .filter(|t| t.tag_type == flv::TAG_TYPE_AUDIO)
        .map(|t| ext.extend(t.timestamp))
        .collect();
    // SequenceStart, then the three frames.
    assert_eq!(ts, vec![0, 0, wrap - 20, wrap + 5]);
}

#[test]
fn live_sources() {
    // Live sources: the aggregator's deadlines (latency, next_time) drive the output.
    let inputs = [
        input(
            "video",
            "videotestsrc is-live=true num-buffers=30 ! \
             video/x-raw,format=I420,width=320,height=240,framerate=30/1 ! \
             x264enc speed-preset=ultrafast tune=zerolatency key-int-max=30 ! h264parse",
            "h264",
        ),
        input(
            "audio",
            "audiotestsrc is-live=true num-buffers=40 samplesperbuffer=1024 ! \
             audio/x-raw,rate=48000 ! audioconvert ! voaacenc ! aacparse",
            "aac",
        ),
    ];
    let m = mux("mux-live", "latency=100000000", &inputs);
    check_every_frame(&m, &inputs);
    let tags = read_tags(&m.path);
    let ts: Vec<u32> = tags.iter().map(|t| t.timestamp).collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{ts:?}");
}

#[test]
fn gstreamer_flvdemux_reads_the_legacy_tracks() {
    // Track 0 H.264 + AAC is plain FLV: GStreamer 1.22's own flvdemux takes it.
    let inputs = [input("video", h264(), "h264"), input("audio", aac(), "aac")];
    let m = mux("mux-legacy-flvdemux", "", &inputs);
    let p = common::pipeline(&format!(
        "filesrc location={} ! flvdemux name=d \
         d.video ! queue ! h264parse ! avdec_h264 ! fakesink name=v \
         d.audio ! queue ! aacparse ! avdec_aac ! fakesink name=a",
        m.path.display()
    ));
    let v = common::count_buffers(&p, "v");
    let a = common::count_buffers(&p, "a");
    common::run(&p, DEADLINE).expect_eos();
    assert_eq!(
        v.load(Ordering::SeqCst),
        m.counts["video"],
        "decoded video frames"
    );
    assert_eq!(
        a.load(Ordering::SeqCst),
        m.counts["audio"],
        "decoded audio frames"
    );
}

#[test]
fn rsflvdemux_gives_back_every_track() {
    // Eight tracks, each codec signalled its own way (VP8 only this way: FFmpeg has no VP8
    // in FLV), through rsflvdemux: every frame comes back on the pad of its track, with its
    // codec's caps; VP8 decodes.
    let inputs = [
        input(
            "video",
            format!("{VIDEO} ! vp8enc deadline=1 cpu-used=16"),
            "vp8",
        ),
        input("video_1", h264(), "h264"),
        input("video_2", av1(), "av1"),
        input(
            "audio",
            format!("{AUDIO} ! audioconvert ! opusenc ! opusparse"),
            "opus",
        ),
        input(
            "audio_1",
            format!("{AUDIO} ! audioconvert ! flacenc ! flacparse"),
            "flac",
        ),
        input(
            "audio_2",
            format!("{AUDIO} ! audioconvert ! lamemp3enc ! mpegaudioparse"),
            "mp3",
        ),
        input(
            "audio_3",
            format!("{AUDIO} ! audioconvert ! avenc_ac3 ! ac3parse"),
            "ac3",
        ),
        input("audio_4", aac(), "aac"),
    ];
    let m = mux("mux-roundtrip", "", &inputs);
    let want_caps = [
        ("video", "video/x-vp8"),
        ("video_1", "video/x-h264"),
        ("video_2", "video/x-av1"),
        ("audio", "audio/x-opus"),
        ("audio_1", "audio/x-flac"),
        ("audio_2", "audio/mpeg"),
        ("audio_3", "audio/x-ac3"),
        ("audio_4", "audio/mpeg"),
    ];
    let mut desc = format!(
        "filesrc location={} ! rsflvdemux name=d d.video ! queue ! vp8dec ! fakesink name=video",
        m.path.display()
    );
    for (pad, _) in &want_caps[1..] {
        desc.push_str(&format!(" d.{pad} ! queue ! fakesink name={pad}"));
    }
    let p = common::pipeline(&desc);
    let seen: Vec<_> = want_caps
        .iter()
        .map(|(pad, _)| {
            let sink = p.by_name(pad).unwrap().static_pad("sink").unwrap();
            let caps = Arc::new(std::sync::Mutex::new(None::<String>));
            let c = caps.clone();
            let n = Arc::new(AtomicU64::new(0));
            let count = n.clone();
            sink.add_probe(gst::PadProbeType::BUFFER, move |pad, _| {
                count.fetch_add(1, Ordering::SeqCst);
                let mut c = c.lock().unwrap();
                if c.is_none() {
                    *c = pad
                        .current_caps()
                        .and_then(|caps| caps.structure(0).map(|s| s.name().to_string()));
                }
                gst::PadProbeReturn::Ok
            });
            (caps, n)
        })
        .collect();
    common::run(&p, DEADLINE).expect_eos();
    for ((pad, name), (caps, n)) in want_caps.iter().zip(&seen) {
        // VP8 is counted after the decoder: decoded frames.
        assert_eq!(
            n.load(Ordering::SeqCst),
            m.counts[pad],
            "{pad}: buffers back"
        );
        if *pad != "video" {
            assert_eq!(caps.lock().unwrap().as_deref(), Some(*name), "{pad}: caps");
        }
    }
}
