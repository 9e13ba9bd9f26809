//! The shared half of RTMP → WebRTC: one H.264 branch and one Opus branch for every viewer,
//! plus the viewers themselves (see `viewer.rs`).
//!
//! ```text
//! ingest H.264 ─ h264parse ─ tee webrtc_h264 ──────────────────────────── viewer 1, 2, …
//!                               └ [only with B-frames] decode ─ x264 ─ tee webrtc_h264_reencoded ─ viewers
//! ingest AAC ── decode ─ opusenc ─ tee webrtc_opus ───────────────────────── viewer 1, 2, …
//! ```
//!
//! - Pass-through: the publisher's H.264 goes to every browser as it is, encoded once by the
//!   publisher; only the payloading (cheap) is per viewer.
//! - B-frames (an FLV composition time other than zero, so PTS ≠ DTS) are something browsers'
//!   WebRTC decoders do not take (Chrome decoded 16 frames of 255). When the probe sees one,
//!   the re-encode branch opens at the next keyframe and new viewers are fed from it: one
//!   x264 constrained-baseline encode shared by all of them. It closes again when the stream
//!   stops for a few seconds (the next publisher is judged afresh).
//! - Audio: browsers take Opus, RTMP brings AAC, so the audio is transcoded once. FLV time
//!   stamps are whole milliseconds, so AAC frames (21.33 ms) jitter by half a millisecond;
//!   Opus timestamps that follow them made Chrome conceal a third of the audio in 10 ms
//!   patches. `perfect-timestamp` counts samples instead.
//! - "Live" means a video frame arrived in the last few seconds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use gst::prelude::*;

use super::offer::{OfferError, read_offer};
use super::viewer::{Sources, Viewer};

/// No video for this long: the stream is not live, and the next frame starts a new judgement
/// of B-frames.
const LIVE_GAP: Duration = Duration::from_secs(3);

/// The pipeline fragment of the shared branches, for `gst::parse::launch`. `video_from` and
/// `audio_from` end in `!` and give H.264 (any stream-format) and AAC, e.g. `"d.video ! "`.
/// Element names are fixed: [`Fanout::attach`] looks them up.
pub fn shared_branches(video_from: &str, audio_from: &str) -> String {
    format!(
        "{video_from} queue name=webrtc_ingest_queue ! h264parse config-interval=-1 ! \
           video/x-h264,stream-format=byte-stream,alignment=au ! \
           tee name=webrtc_h264 allow-not-linked=true \
         webrtc_h264. ! queue name=webrtc_reencode_queue leaky=downstream max-size-buffers=0 \
           max-size-bytes=0 max-size-time=1000000000 ! avdec_h264 ! videoconvert ! \
           x264enc tune=zerolatency speed-preset=ultrafast bframes=0 key-int-max=30 bitrate=2000 ! \
           video/x-h264,profile=constrained-baseline ! h264parse config-interval=-1 ! \
           video/x-h264,stream-format=byte-stream,alignment=au ! \
           tee name=webrtc_h264_reencoded allow-not-linked=true \
         {audio_from} queue name=webrtc_audio_queue ! aacparse ! avdec_aac ! audioconvert ! \
           audioresample ! audio/x-raw,rate=48000,channels=2 ! \
           opusenc bitrate=64000 perfect-timestamp=true ! \
           tee name=webrtc_opus allow-not-linked=true"
    )
}

/// Why a viewer was not added, each with its HTTP meaning (see `http.rs`).
#[derive(Debug)]
pub enum WhepError {
    /// 409: nothing is being published.
    NotLive,
    /// 400: not an SDP offer.
    BadOffer(String),
    /// 422: an offer without H.264 video.
    Unsupported(String),
    /// 503: `max_viewers` reached.
    Full,
    /// 500: webrtcbin failed to answer.
    Failed(String),
}

#[derive(Default)]
struct Live {
    last_frame: Option<Instant>,
    bframes: bool,
    /// The re-encode branch has been fed a keyframe since `bframes` was set.
    reencoding: bool,
    frames: u64,
}

struct Inner {
    pipeline: gst::Pipeline,
    video: gst::Element,
    reencoded: gst::Element,
    audio: gst::Element,
    ice_addresses: Vec<String>,
    max_viewers: usize,
    live: Mutex<Live>,
    viewers: Mutex<HashMap<String, Viewer>>,
    /// Viewers being negotiated, counted against `max_viewers`.
    joining: Mutex<usize>,
}

/// The WebRTC side of one ingested stream. Cheap to clone.
#[derive(Clone)]
pub struct Fanout {
    inner: Arc<Inner>,
}

/// What [`Fanout::stats`] reports.
#[derive(Debug, Clone, Copy)]
pub struct FanoutStats {
    pub live: bool,
    pub reencoding: bool,
    pub viewers: usize,
    pub frames: u64,
}

impl Fanout {
    /// Finds the elements of [`shared_branches`] in `pipeline` and installs the probes that
    /// watch for B-frames and liveness. `ice_addresses`: the local addresses viewers' ICE
    /// agents offer (empty: every interface).
    pub fn attach(
        pipeline: &gst::Pipeline,
        ice_addresses: Vec<String>,
        max_viewers: usize,
    ) -> Result<Fanout, String> {
        let get = |name: &str| {
            pipeline
                .by_name(name)
                .ok_or_else(|| format!("{name} is not in the pipeline (see shared_branches)"))
        };
        let inner = Arc::new(Inner {
            pipeline: pipeline.clone(),
            video: get("webrtc_h264")?,
            reencoded: get("webrtc_h264_reencoded")?,
            audio: get("webrtc_opus")?,
            ice_addresses,
            max_viewers,
            live: Mutex::default(),
            viewers: Mutex::default(),
            joining: Mutex::new(0),
        });

        let weak = Arc::downgrade(&inner);
        let watch = inner.video.static_pad("sink").expect("tee has a sink");
        watch.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let (Some(inner), Some(buffer)) = (weak.upgrade(), info.buffer()) {
                let mut live = inner.live.lock().unwrap();
                let was = live.bframes;
                let now = Instant::now();
                if live.last_frame.is_none_or(|t| now - t > LIVE_GAP) {
                    live.bframes = false;
                    live.reencoding = false;
                }
                live.last_frame = Some(now);
                live.frames += 1;
                if let (Some(pts), Some(dts)) = (buffer.pts(), buffer.dts())
                    && pts != dts
                    && !live.bframes
                {
                    println!("webrtc: the stream has B-frames; re-encoding it for browsers");
                    live.bframes = true;
                }
                if live.bframes != was {
                    retap_later(&inner, live.bframes);
                }
            }
            gst::PadProbeReturn::Ok
        });

        let weak = Arc::downgrade(&inner);
        let gate = get("webrtc_reencode_queue")?
            .static_pad("sink")
            .expect("queue has a sink");
        gate.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            let Some(inner) = weak.upgrade() else {
                return gst::PadProbeReturn::Handled;
            };
            let keyframe = info
                .buffer()
                .is_some_and(|b| !b.flags().contains(gst::BufferFlags::DELTA_UNIT));
            let mut live = inner.live.lock().unwrap();
            if live.bframes && keyframe {
                live.reencoding = true;
            }
            if live.bframes && live.reencoding {
                gst::PadProbeReturn::Ok
            } else {
                // Consumed here (the buffer in `info` is dropped with it); `Drop` made
                // GStreamer 1.22 unref a NULL buffer through gstreamer-rs 0.25.
                gst::PadProbeReturn::Handled
            }
        });
        Ok(Fanout { inner })
    }

    pub fn stats(&self) -> FanoutStats {
        let live = self.inner.live.lock().unwrap();
        FanoutStats {
            live: live.last_frame.is_some_and(|t| t.elapsed() < LIVE_GAP),
            reencoding: live.bframes,
            viewers: self.inner.viewers.lock().unwrap().len(),
            frames: live.frames,
        }
    }

    /// Answers a WHEP offer: builds a viewer, returns its id and the SDP answer (with every
    /// local candidate in it). Blocks for the exchange (a fraction of a second on loopback);
    /// call it from a thread that may block.
    pub fn add_viewer(&self, offer: &str) -> Result<(String, String), WhepError> {
        let (sdp, choice) = read_offer(offer).map_err(|e| match e {
            OfferError::Malformed(m) => WhepError::BadOffer(m),
            OfferError::Unsupported(m) => WhepError::Unsupported(m),
        })?;
        let stats = self.stats();
        if !stats.live {
            return Err(WhepError::NotLive);
        }
        {
            let mut joining = self.inner.joining.lock().unwrap();
            if stats.viewers + *joining >= self.inner.max_viewers {
                return Err(WhepError::Full);
            }
            *joining += 1;
        }
        let result = self.negotiate(sdp, &choice, stats.reencoding);
        *self.inner.joining.lock().unwrap() -= 1;
        result
    }

    fn negotiate(
        &self,
        sdp: gst_sdp::SDPMessage,
        choice: &super::offer::Choice,
        reencoding: bool,
    ) -> Result<(String, String), WhepError> {
        let inner = &self.inner;
        let id = format!("{:016x}", rand::random::<u64>());
        let video_tee = if reencoding {
            &inner.reencoded
        } else {
            &inner.video
        };
        let src = Sources {
            video_tee,
            audio_tee: &inner.audio,
            ice_addresses: &inner.ice_addresses,
        };
        let on_error = {
            let (weak, id) = (Arc::downgrade(inner), id.clone());
            Box::new(move |what: String| {
                println!("webrtc: viewer {id} failed, removing it: {what}");
                remove_later(&weak, &id);
            })
        };
        let name = format!("whep-viewer-{id}");
        let mut viewer = Viewer::build(&inner.pipeline, &name, choice, &src, on_error)
            .map_err(WhepError::Failed)?;
        let answer = match viewer.answer(sdp) {
            Ok(a) => a,
            Err(e) => {
                viewer.remove(&inner.pipeline);
                return Err(WhepError::Failed(e));
            }
        };
        let (weak, vid) = (Arc::downgrade(inner), id.clone());
        viewer
            .webrtc
            .connect_notify(Some("connection-state"), move |w, _| {
                use gst_webrtc::WebRTCPeerConnectionState as S;
                let state: S = w.property("connection-state");
                if matches!(state, S::Failed | S::Closed) {
                    remove_later(&weak, &vid);
                }
            });
        // A player that goes away without a DELETE (a closed tab, a lost network) stops
        // sending RTCP receiver reports: its source times out in webrtcbin's rtpbin, or says
        // BYE. Without this its viewer would stay, sending to nobody, until max_viewers.
        let rtpbin = viewer
            .webrtc
            .downcast_ref::<gst::Bin>()
            .and_then(|b| b.by_name("rtpbin"));
        if let Some(rtpbin) = rtpbin {
            for signal in ["on-timeout", "on-bye-ssrc"] {
                let (weak, vid) = (Arc::downgrade(inner), id.clone());
                rtpbin.connect(signal, false, move |_| {
                    println!("webrtc: viewer {vid} went away ({signal}), removing it");
                    remove_later(&weak, &vid);
                    None
                });
            }
        }
        inner.viewers.lock().unwrap().insert(id.clone(), viewer);
        Ok((id, answer))
    }

    /// A PATCH's trickled candidates; `None` for an unknown session.
    pub fn add_candidates(&self, id: &str, frag: &str) -> Option<usize> {
        let viewers = self.inner.viewers.lock().unwrap();
        viewers.get(id).map(|v| v.add_candidates(frag))
    }

    /// Ends a session (DELETE); false if there was none with that id.
    pub fn remove_viewer(&self, id: &str) -> bool {
        remove(&self.inner, id)
    }

    /// Ends every session (before the pipeline stops).
    pub fn remove_all(&self) {
        let ids: Vec<String> = self.inner.viewers.lock().unwrap().keys().cloned().collect();
        for id in ids {
            remove(&self.inner, &id);
        }
    }
}

fn remove(inner: &Inner, id: &str) -> bool {
    let viewer = inner.viewers.lock().unwrap().remove(id);
    match viewer {
        Some(mut v) => {
            v.remove(&inner.pipeline);
            true
        }
        None => false,
    }
}

/// A new publisher came with (or without) B-frames: the viewers already watching move to the
/// branch that now carries the stream. Off the streaming thread, which is inside a probe here.
fn retap_later(inner: &Arc<Inner>, reencoded: bool) {
    let weak = Arc::downgrade(inner);
    std::thread::spawn(move || {
        let Some(inner) = weak.upgrade() else {
            return;
        };
        let (from, to) = if reencoded {
            (&inner.video, &inner.reencoded)
        } else {
            (&inner.reencoded, &inner.video)
        };
        let mut viewers = inner.viewers.lock().unwrap();
        for viewer in viewers.values_mut() {
            viewer.retap(from, to);
        }
    });
}

/// Removal from a webrtcbin callback or a bin's message handler: on a thread of its own, since
/// stopping webrtcbin from inside its own callbacks deadlocks.
fn remove_later(weak: &Weak<Inner>, id: &str) {
    let (weak, id) = (weak.clone(), id.to_string());
    std::thread::spawn(move || {
        if let Some(inner) = weak.upgrade() {
            remove(&inner, &id);
        }
    });
}
