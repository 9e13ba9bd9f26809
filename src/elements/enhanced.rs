//! The `enhanced` property of the source elements: what part of an Enhanced RTMP stream goes
//! downstream.
//!
//! A publisher that moves to HEVC, AV1, Opus or a second audio track sends tags that
//! `flvdemux` before GStreamer 1.28 fails on, stopping the whole pipeline. With `auto` (the
//! default) a source looks at what reads its output: through queues, tees and capsfilters to
//! the first element that does something with the bytes. When that is such an `flvdemux`, it
//! forwards only what a legacy reader takes (see [`rsrtmp_engine::legacy`]) and says on the
//! bus, once per track, what it left out and how to get it; anything else downstream
//! (rsflvdemux, a newer flvdemux, a file, a sink, decodebin — which picks rsflvdemux) gets
//! every byte.

use bytes::Bytes;
use gst::glib;
use gst::prelude::*;
use rsrtmp_engine::eflv::MediaKind;
use rsrtmp_engine::legacy::{DroppedTrack, LegacyBody, LegacyFilter};

/// Property value.
#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstRsRtmpEnhanced")]
pub enum Enhanced {
    /// Everything, unless the reader downstream is a legacy-only FLV demuxer.
    #[default]
    #[enum_value(
        name = "Everything, unless downstream is a legacy-only flvdemux",
        nick = "auto"
    )]
    Auto = 0,
    /// Every tag as the publisher sent it.
    #[enum_value(name = "Every track as the publisher sent it", nick = "all")]
    All = 1,
    /// Only what a legacy FLV reader takes.
    #[enum_value(name = "Only legacy FLV (track 0, legacy codecs)", nick = "legacy")]
    Legacy = 2,
}

/// `rtmpserversink`'s `enhanced-policy`: what each player gets of an Enhanced RTMP stream.
#[derive(Debug, Eq, PartialEq, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstRsRtmpEnhancedPolicy")]
pub enum Policy {
    /// Everything the publisher sent, to every player (SRS's behaviour; FFmpeg players never
    /// announce what they read).
    #[default]
    #[enum_value(name = "Every player gets what the publisher sent", nick = "forward")]
    Forward = 0,
    /// Only what the player's connect announced (MediaMTX's behaviour).
    #[enum_value(
        name = "A player gets only the codecs, multitrack and ModEx its connect announced",
        nick = "strict"
    )]
    Strict = 1,
}

/// The sink's `enhanced-policy` property spec.
pub fn policy_property() -> glib::ParamSpec {
    glib::ParamSpecEnum::builder_with_default("enhanced-policy", Policy::default())
        .nick("Enhanced RTMP policy")
        .blurb(
            "forward: every player gets every track as published; strict: a player gets only \
             the FourCCs its connect listed (none: legacy FLV only), multitrack and ModEx only \
             when its capsEx announced them",
        )
        .mutable_ready()
        .build()
}

/// The property spec both sources install.
pub fn property() -> glib::ParamSpec {
    glib::ParamSpecEnum::builder_with_default("enhanced", Enhanced::default())
        .nick("Enhanced RTMP")
        .blurb(
            "What goes downstream of an Enhanced RTMP stream (HEVC, AV1, VP9, Opus, FLAC, \
             AC-3, multitrack): all, only what a legacy FLV reader takes (legacy), or all \
             unless the reader downstream is flvdemux older than GStreamer 1.28 (auto)",
        )
        .mutable_ready()
        .build()
}

/// Elements that hand FLV on untouched, by type name: the walk goes through them.
const PASS_THROUGH: &[&str] = &[
    "GstQueue",
    "GstQueue2",
    "GstMultiQueue",
    "GstTee",
    "GstCapsFilter",
    "GstIdentity",
    "GstValve",
    "GstTypeFindElement",
    "GstFunnel",
    "GstInputSelector",
    "GstOutputSelector",
];

/// The type name of GStreamer's own flvdemux.
const FLVDEMUX_TYPE: &str = "GstFlvDemux";

/// The first GStreamer release whose flvdemux reads Enhanced FLV.
const FLVDEMUX_ENHANCED_SINCE: (u32, u32) = (1, 28);

/// How deep the walk goes before it gives up (and assumes an enhanced reader).
const MAX_HOPS: usize = 32;

/// The version of the plugin flvdemux comes from ("1.22.0"). Asked of the registry: the
/// class of an element does not always lead back to its factory.
fn flvdemux_version() -> Option<String> {
    let factory = gst::ElementFactory::find("flvdemux")?;
    Some(factory.plugin()?.version().to_string())
}

fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??))
}

/// The pad that actually takes data after `pad` (a peer's sink pad): bins' ghost pads are
/// followed in and out.
fn resolve(pad: gst::Pad) -> Option<gst::Pad> {
    let mut pad = pad;
    for _ in 0..MAX_HOPS {
        if let Some(ghost) = pad.downcast_ref::<gst::GhostPad>() {
            pad = ghost.target()?;
            continue;
        }
        // The inner side of a bin's source ghost pad: carry on after the ghost pad.
        if let Some(ghost) = pad
            .parent()
            .and_then(|p| p.downcast::<gst::GhostPad>().ok())
        {
            pad = ghost.peer()?;
            continue;
        }
        return Some(pad);
    }
    None
}

/// The legacy-only FLV demuxer that reads what leaves `src`, if there is one.
pub fn legacy_reader_downstream(src: &gst::Pad) -> Option<gst::Element> {
    let mut todo: Vec<gst::Pad> = src.peer().into_iter().collect();
    let mut hops = 0;
    while let Some(pad) = todo.pop() {
        hops += 1;
        if hops > MAX_HOPS {
            return None;
        }
        let Some(element) = resolve(pad).and_then(|p| p.parent_element()) else {
            continue;
        };
        let name = element.type_().name();
        if name == FLVDEMUX_TYPE {
            match flvdemux_version().as_deref().and_then(major_minor) {
                Some(v) if v >= FLVDEMUX_ENHANCED_SINCE => continue,
                _ => return Some(element),
            }
        }
        if PASS_THROUGH.contains(&name) {
            todo.extend(element.src_pads().iter().filter_map(|p| p.peer()));
        }
    }
    None
}

/// Why the output is filtered, for the messages.
#[derive(Debug, Clone)]
enum Reason {
    /// `enhanced=legacy`.
    Asked,
    /// `enhanced=auto` found this element (name, GStreamer version).
    Reader(String, String),
}

/// Applies the `enhanced` setting to a source's output, one tag at a time.
#[derive(Debug, Default)]
pub struct Gate {
    mode: Enhanced,
    /// Filtering the current stream, and why.
    reason: Option<Reason>,
    filter: LegacyFilter,
}

/// What the gate made of a tag.
pub enum Pass {
    /// Send the tag as it is.
    Keep,
    /// Send this body instead (track 0 in legacy signalling).
    Replace(Bytes),
    /// Nothing of this tag goes downstream.
    Skip,
}

impl Gate {
    /// A gate for the given setting; [`Gate::begin`] decides per stream.
    pub fn new(mode: Enhanced) -> Gate {
        Gate {
            mode,
            ..Gate::default()
        }
    }

    /// A new stream (publisher, connection) begins: decides from the setting and what is
    /// downstream of `src` now.
    pub fn begin(&mut self, src: &gst::Pad) {
        self.filter.reset();
        self.reason = match self.mode {
            Enhanced::All => None,
            Enhanced::Legacy => Some(Reason::Asked),
            Enhanced::Auto => legacy_reader_downstream(src).map(|e| {
                let version = flvdemux_version().unwrap_or_else(|| "unknown".into());
                Reason::Reader(e.name().to_string(), version)
            }),
        };
        if let Some(Reason::Reader(name, version)) = &self.reason {
            gst::debug!(
                gst::CAT_DEFAULT,
                obj = src,
                "{name} (GStreamer {version}) reads only legacy FLV: Enhanced RTMP tracks will be dropped"
            );
        }
    }

    /// Whether the current stream is being filtered.
    pub fn filtering(&self) -> bool {
        self.reason.is_some()
    }

    /// Whether track 0 of `kind` is being left out (then its decoder configuration will not
    /// come either, and the FLV header must not announce it).
    pub fn drops_track0(&self, kind: MediaKind) -> bool {
        self.filter
            .dropped()
            .iter()
            .any(|d| d.kind == kind && d.track == 0)
    }

    fn why(&self) -> String {
        // Short: FFmpeg shows a publisher at most 255 bytes of the server's description.
        match &self.reason {
            Some(Reason::Reader(name, version)) => format!(
                "{name} (flvdemux {version}) reads only legacy FLV: use rsflvdemux (or flvdemux \
                 1.28+), or enhanced=all"
            ),
            _ => "enhanced=legacy is set: use enhanced=auto or all to pass it on".into(),
        }
    }

    fn list(tracks: &[DroppedTrack]) -> String {
        tracks
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Filters one tag body (`timestamp` in ms). Posts a warning for each newly dropped
    /// track, and an element error (returning `Err`) once nothing legacy is left.
    pub fn pass(
        &mut self,
        element: &gst::Element,
        tag_type: u8,
        timestamp: u64,
        body: &[u8],
    ) -> Result<Pass, gst::FlowError> {
        if self.reason.is_none() {
            return Ok(Pass::Keep);
        }
        let out = self.filter.filter(tag_type, timestamp, body);
        if !out.newly_dropped.is_empty() {
            let tracks = Self::list(&out.newly_dropped);
            gst::element_warning!(
                element,
                gst::StreamError::CodecNotFound,
                ("Dropping {tracks}: {}", self.why()),
                ["Enhanced RTMP track(s) left out of the FLV output: {tracks}"]
            );
        }
        if out.nothing_left {
            return Err(self.nothing_left(element));
        }
        Ok(match out.body {
            LegacyBody::Keep => Pass::Keep,
            LegacyBody::Rewritten(b) => Pass::Replace(b),
            LegacyBody::Drop => Pass::Skip,
        })
    }

    /// The stream ended: an element error when all its media was dropped.
    pub fn finish(&mut self, element: &gst::Element) -> Result<(), gst::FlowError> {
        if self.reason.is_some() && self.filter.finish() {
            return Err(self.nothing_left(element));
        }
        Ok(())
    }

    /// The message of the error, also what a publisher is told.
    pub fn nothing_left_text(&self) -> String {
        format!(
            "Nothing of the stream can go downstream: it has only Enhanced RTMP tracks ({}); {}",
            Self::list(self.filter.dropped()),
            self.why()
        )
    }

    fn nothing_left(&self, element: &gst::Element) -> gst::FlowError {
        let text = self.nothing_left_text();
        gst::element_error!(element, gst::StreamError::CodecNotFound, ("{text}"));
        gst::FlowError::Error
    }
}
