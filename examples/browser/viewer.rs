//! One WHEP viewer: a bin holding its own webrtcbin, fed from the shared tees.
//!
//! Invariant: nothing that happens inside a viewer reaches the shared branches or the ingest.
//! Two walls make that true:
//! - the bin's sink pads are "firewall" ghost pads: whatever flow error the viewer's queue
//!   returns (not-negotiated, error) is answered `Ok` to the tee, so it never travels upstream
//!   (a tee would hand it to the demuxer, which would stop the whole pipeline);
//! - the bin swallows the error messages of its children (`ViewerBin::handle_message`) and
//!   reports them to the fanout, which removes the viewer, instead of posting them on the
//!   pipeline's bus, where the application would take them for its own.
//!
//! Each viewer's queue is leaky, so a viewer that cannot keep up drops its own packets and
//! never blocks the tee.

use std::sync::Mutex;
use std::sync::mpsc;
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;

use super::offer::{Choice, Track};

/// How long one step of the offer/answer exchange may take before the POST fails with a 500.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

type ErrorHook = Box<dyn Fn(String) + Send + Sync>;

mod imp {
    use super::*;

    #[derive(Default)]
    pub struct ViewerBin {
        pub on_error: Mutex<Option<ErrorHook>>,
    }

    #[glib::object_subclass]
    impl ObjectSubclass for ViewerBin {
        const NAME: &'static str = "RsrtmpExampleWhepViewer";
        type Type = super::ViewerBin;
        type ParentType = gst::Bin;
    }

    impl ObjectImpl for ViewerBin {}
    impl GstObjectImpl for ViewerBin {}
    impl ElementImpl for ViewerBin {}

    impl BinImpl for ViewerBin {
        fn handle_message(&self, msg: gst::Message) {
            if let gst::MessageView::Error(e) = msg.view() {
                let what = format!(
                    "{}: {} ({})",
                    e.src().map(|s| s.name().to_string()).unwrap_or_default(),
                    e.error(),
                    e.debug().map(|d| d.to_string()).unwrap_or_default()
                );
                if let Some(hook) = self.on_error.lock().unwrap().as_ref() {
                    hook(what);
                }
                return;
            }
            self.parent_handle_message(msg)
        }
    }
}

glib::wrapper! {
    /// The bin of one viewer; see the module comment for why it is its own type.
    pub struct ViewerBin(ObjectSubclass<imp::ViewerBin>) @extends gst::Bin, gst::Element, gst::Object;
}

/// A viewer's elements and the tee pads that feed it.
pub struct Viewer {
    pub bin: ViewerBin,
    pub webrtc: gst::Element,
    /// (tee, its request pad linked to this viewer)
    feeds: Vec<(gst::Element, gst::Pad)>,
}

fn make(factory: &str) -> Result<gst::Element, String> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|_| format!("element {factory} is missing (see scripts/setup.sh)"))
}

/// A sink ghost pad whose peer never sees the viewer's flow errors.
fn firewall_pad(name: &str, target: &gst::Pad) -> Result<gst::GhostPad, String> {
    let pad = gst::GhostPad::builder_with_target(target)
        .map_err(|e| format!("ghost pad {name}: {e}"))?
        .name(name)
        .chain_function(|pad, parent, buffer| {
            match gst::ProxyPad::chain_default(pad, parent, buffer) {
                Err(gst::FlowError::Flushing) => Err(gst::FlowError::Flushing),
                _ => Ok(gst::FlowSuccess::Ok),
            }
        })
        .chain_list_function(|pad, parent, list| {
            match gst::ProxyPad::chain_list_default(pad, parent, list) {
                Err(gst::FlowError::Flushing) => Err(gst::FlowError::Flushing),
                _ => Ok(gst::FlowSuccess::Ok),
            }
        })
        .build();
    Ok(pad)
}

/// Where a viewer's tracks come from.
pub struct Sources<'a> {
    pub video_tee: &'a gst::Element,
    pub audio_tee: &'a gst::Element,
    /// Local addresses the ICE agent gathers on (libnice skips loopback unless told).
    pub ice_addresses: &'a [String],
}

impl Viewer {
    /// Builds the viewer's bin inside `pipeline` and links it to the tees. Media waits at
    /// webrtcbin until the exchange in [`Viewer::answer`] is done.
    pub fn build(
        pipeline: &gst::Pipeline,
        name: &str,
        choice: &Choice,
        src: &Sources<'_>,
        on_error: ErrorHook,
    ) -> Result<Viewer, String> {
        let bin: ViewerBin = glib::Object::builder().property("name", name).build();
        *bin.imp().on_error.lock().unwrap() = Some(on_error);
        let webrtc = make("webrtcbin")?;
        webrtc.set_property_from_str("bundle-policy", "max-bundle");
        bin.add(&webrtc).map_err(|e| e.to_string())?;
        ice_on(&webrtc, src.ice_addresses);

        let mut inputs = Vec::new();
        for track in &choice.tracks {
            let queue = make("queue")?;
            queue.set_property_from_str("leaky", "downstream");
            queue.set_property("max-size-buffers", 0u32);
            queue.set_property("max-size-bytes", 0u32);
            queue.set_property("max-size-time", 1_000_000_000u64);
            let (chain, prefs, tee, pad_name) = match track {
                Track::H264 {
                    pt,
                    profile_level_id,
                } => {
                    let pay = make("rtph264pay")?;
                    pay.set_property("pt", u32::from(*pt));
                    pay.set_property("config-interval", -1i32);
                    pay.set_property("mtu", 1200u32);
                    pay.set_property_from_str("aggregate-mode", "zero-latency");
                    // Whatever the stream's real profile, announce the one the browser offered.
                    let setter = make("capssetter")?;
                    let caps = gst::Caps::builder("application/x-rtp")
                        .field("profile-level-id", profile_level_id)
                        .build();
                    setter.set_property("caps", &caps);
                    let prefs = gst::Caps::builder("application/x-rtp")
                        .field("media", "video")
                        .field("encoding-name", "H264")
                        .field("payload", i32::from(*pt))
                        .field("clock-rate", 90000i32)
                        .field("packetization-mode", "1")
                        .field("profile-level-id", profile_level_id)
                        .build();
                    (vec![queue, pay, setter], prefs, src.video_tee, "video")
                }
                Track::Opus { pt } => {
                    let pay = make("rtpopuspay")?;
                    pay.set_property("pt", u32::from(*pt));
                    let prefs = gst::Caps::builder("application/x-rtp")
                        .field("media", "audio")
                        .field("encoding-name", "OPUS")
                        .field("payload", i32::from(*pt))
                        .field("clock-rate", 48000i32)
                        .build();
                    (vec![queue, pay], prefs, src.audio_tee, "audio")
                }
            };
            bin.add_many(&chain).map_err(|e| e.to_string())?;
            gst::Element::link_many(&chain).map_err(|e| format!("{pad_name} branch: {e}"))?;
            let last = chain.last().expect("two elements or more");
            last.link(&webrtc)
                .map_err(|e| format!("{pad_name} to webrtcbin: {e}"))?;
            let sink = last
                .static_pad("src")
                .and_then(|p| p.peer())
                .ok_or("webrtcbin gave no sink pad (is gstreamer1.0-nice installed?)")?;
            let transceiver: gst_webrtc::WebRTCRTPTransceiver = sink.property("transceiver");
            transceiver.set_property(
                "direction",
                gst_webrtc::WebRTCRTPTransceiverDirection::Sendonly,
            );
            transceiver.set_property("codec-preferences", &prefs);
            let target = chain[0].static_pad("sink").expect("queue has a sink");
            let ghost = firewall_pad(pad_name, &target)?;
            bin.add_pad(&ghost).map_err(|e| e.to_string())?;
            inputs.push((tee.clone(), ghost));
        }

        pipeline.add(&bin).map_err(|e| e.to_string())?;
        let mut viewer = Viewer {
            bin: bin.clone(),
            webrtc,
            feeds: Vec::new(),
        };
        if bin.sync_state_with_parent().is_err() {
            viewer.remove(pipeline);
            return Err("the viewer's elements did not start".into());
        }
        for (tee, ghost) in inputs {
            let Some(tee_pad) = tee.request_pad_simple("src_%u") else {
                viewer.remove(pipeline);
                return Err("the shared tee gave no pad".into());
            };
            viewer.feeds.push((tee.clone(), tee_pad.clone()));
            if let Err(e) = tee_pad.link(&ghost) {
                viewer.remove(pipeline);
                return Err(format!("linking the viewer to the shared branch: {e:?}"));
            }
        }
        Ok(viewer)
    }

    /// The offer/answer exchange: set the offer, create and set the answer, wait until every
    /// local candidate is gathered (WHEP servers do not trickle), return the answer's text.
    pub fn answer(&self, offer: gst_sdp::SDPMessage) -> Result<String, String> {
        let offer =
            gst_webrtc::WebRTCSessionDescription::new(gst_webrtc::WebRTCSDPType::Offer, offer);
        promise_step("set-remote-description", |p| {
            self.webrtc
                .emit_by_name::<()>("set-remote-description", &[&offer, p])
        })?;
        let reply = promise_step("create-answer", |p| {
            self.webrtc
                .emit_by_name::<()>("create-answer", &[&None::<gst::Structure>, p])
        })?
        .ok_or("create-answer gave no reply")?;
        let answer = reply
            .get::<gst_webrtc::WebRTCSessionDescription>("answer")
            .map_err(|_| format!("create-answer failed: {reply}"))?;
        // webrtcbin 1.22 sometimes answers with no SDP at all (webrtc.md §4); reading it would
        // dereference NULL.
        if unsafe { (*answer.as_ptr()).sdp.is_null() } {
            return Err("create-answer returned an answer without SDP".into());
        }

        promise_step("set-local-description", |p| {
            self.webrtc
                .emit_by_name::<()>("set-local-description", &[&answer, p])
        })?;
        wait_gathered(&self.webrtc)?;
        local_sdp(&self.webrtc)
    }

    /// Trickled candidates from a PATCH (`a=candidate:` lines of an sdpfrag). With BUNDLE
    /// every candidate belongs to the first m-line.
    pub fn add_candidates(&self, frag: &str) -> usize {
        let mut added = 0;
        for line in frag.lines() {
            if let Some(c) = line.trim().strip_prefix("a=")
                && c.starts_with("candidate:")
            {
                self.webrtc
                    .emit_by_name::<()>("add-ice-candidate", &[&0u32, &c]);
                added += 1;
            }
        }
        added
    }

    /// Moves this viewer's feed from tee `from` to tee `to` (same caps: H.264 byte-stream in
    /// access units); the payloader takes the new SPS/PPS in-band at the next keyframe.
    pub fn retap(&mut self, from: &gst::Element, to: &gst::Element) {
        let mut feeds = Vec::new();
        for (tee, pad) in self.feeds.drain(..) {
            let ghost = pad.peer();
            let Some(ghost) = ghost.filter(|_| &tee == from) else {
                feeds.push((tee, pad));
                continue;
            };
            let _ = pad.unlink(&ghost);
            tee.release_request_pad(&pad);
            // A feed that cannot be moved is dropped: that track of this viewer stops.
            if let Some(new) = to.request_pad_simple("src_%u") {
                if new.link(&ghost).is_ok() {
                    feeds.push((to.clone(), new));
                } else {
                    to.release_request_pad(&new);
                }
            }
        }
        self.feeds = feeds;
    }

    /// Unlinks from the tees first (the shared branches then never push into a stopping
    /// viewer), then stops and removes the bin. Not to be called from a streaming thread or
    /// from a webrtcbin signal.
    pub fn remove(&mut self, pipeline: &gst::Pipeline) {
        for (tee, pad) in self.feeds.drain(..) {
            if let Some(peer) = pad.peer() {
                let _ = pad.unlink(&peer);
            }
            tee.release_request_pad(&pad);
        }
        let _ = self.bin.set_state(gst::State::Null);
        let _ = pipeline.remove(&self.bin);
    }
}

/// Emits a webrtcbin action with a promise and waits for its reply. An `error` field in the
/// reply is a failure.
pub fn promise_step(
    what: &str,
    emit: impl FnOnce(&gst::Promise),
) -> Result<Option<gst::Structure>, String> {
    let (tx, rx) = mpsc::channel();
    let promise = gst::Promise::with_change_func(move |reply| {
        let reply = match reply {
            Ok(r) => Ok(r.map(|s| s.to_owned())),
            Err(e) => Err(format!("{e:?}")),
        };
        let _ = tx.send(reply);
    });
    emit(&promise);
    let reply = rx
        .recv_timeout(STEP_TIMEOUT)
        .map_err(|_| format!("{what}: no reply"))?
        .map_err(|e| format!("{what}: {e}"))?;
    if let Some(r) = &reply
        && r.has_field("error")
    {
        let why = r
            .get::<glib::Error>("error")
            .map(|e| e.to_string())
            .unwrap_or_else(|_| "refused, without saying why".into());
        return Err(format!("{what}: {why}"));
    }
    Ok(reply)
}

/// Restricts a webrtcbin's ICE gathering to `addresses` (none: every interface; libnice
/// leaves loopback out unless it is named) and turns libnice's UPnP port mapping off: a
/// server needs none, and it warns about every interface it cannot map.
pub fn ice_on(webrtc: &gst::Element, addresses: &[String]) {
    let agent: glib::Object = webrtc.property("ice-agent");
    for addr in addresses {
        let _added: bool = agent.emit_by_name("add-local-ip-address", &[addr]);
    }
    if agent.find_property("agent").is_some() {
        let nice: glib::Object = agent.property("agent");
        if nice.find_property("upnp").is_some() {
            nice.set_property("upnp", false);
        }
    }
}

/// Waits until webrtcbin has gathered every local candidate (a WHEP answer, or a WHEP
/// player's offer, carries them all).
pub fn wait_gathered(webrtc: &gst::Element) -> Result<(), String> {
    use gst_webrtc::WebRTCICEGatheringState as G;
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let handler = webrtc.connect_notify(Some("ice-gathering-state"), move |w, _| {
        if w.property::<G>("ice-gathering-state") == G::Complete {
            let _ = tx.lock().unwrap().send(());
        }
    });
    // Checked after connecting, so a completion in between is not missed.
    let result = if webrtc.property::<G>("ice-gathering-state") == G::Complete {
        Ok(())
    } else {
        rx.recv_timeout(STEP_TIMEOUT)
            .map_err(|_| "ICE gathering did not complete".to_string())
    };
    webrtc.disconnect(handler);
    result
}

/// The text of webrtcbin's local description.
pub fn local_sdp(webrtc: &gst::Element) -> Result<String, String> {
    let local: Option<gst_webrtc::WebRTCSessionDescription> = webrtc.property("local-description");
    let local = local.ok_or("no local description")?;
    if unsafe { (*local.as_ptr()).sdp.is_null() } {
        return Err("the local description has no SDP".into());
    }
    local.sdp().as_text().map_err(|e| e.to_string())
}
