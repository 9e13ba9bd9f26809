//! rtmpclientsink: FLV in, RTMP publish out.
//!
//! The streaming thread only parses FLV framing and hands frames to the connection task
//! (`crate::net::client::Publisher`); the bounded channel between them is the backpressure.
//! `streamheader` buffers from the caps are sent first; buffers flagged HEADER that repeat
//! them are skipped. On EOS the task sends the stop commands and closes politely before the
//! EOS goes on. `unlock()` cancels a wait on the task, never the connection.
//!
//! Raw FLV (buffers without timestamps, from `filesrc`) is paced by its tag timestamps when
//! `sync` is on, like `ffmpeg -re` (`crate::elements::pacing`), and a file that starts again
//! (a loop, the next file) continues the timeline; timestamped input (flvmux) is BaseSink's to
//! sync, as for any sink.

use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use bytes::Bytes;
use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::subclass::prelude::*;

use crate::elements::clientcommon::{self, CommonSettings, Flushing};
use crate::elements::pacing::{self, Input, Pacer};
use crate::elements::tracks::Tracks;
use crate::net::client::media::{FlvDemuxer, MediaFrame};
use crate::net::client::{ClientConfig, PublishConfig, Publisher, Stats, StopCommands};

const DEFAULT_CHUNK_SIZE: u32 = 4096;
const DEFAULT_MAX_HOLD_TIME: u32 = 10_000;
const DEFAULT_RECONNECT: bool = true;

/// Which commands end a published stream (rtmp2's `stop-commands`, with its nicks). The type
/// name differs from rtmp2's so both plugins load into one process.
#[glib::flags(name = "GstRsRtmpStopCommands")]
pub enum RtmpStopCommands {
    #[flags_value(name = "FCUnpublish", nick = "fcunpublish")]
    FCUNPUBLISH = 0b001,
    #[flags_value(name = "closeStream", nick = "closestream")]
    CLOSESTREAM = 0b010,
    #[flags_value(name = "deleteStream", nick = "deletestream")]
    DELETESTREAM = 0b100,
}

impl From<RtmpStopCommands> for StopCommands {
    fn from(f: RtmpStopCommands) -> StopCommands {
        StopCommands {
            fc_unpublish: f.contains(RtmpStopCommands::FCUNPUBLISH),
            close_stream: f.contains(RtmpStopCommands::CLOSESTREAM),
            delete_stream: f.contains(RtmpStopCommands::DELETESTREAM),
        }
    }
}

const DEFAULT_STOP_COMMANDS: RtmpStopCommands =
    RtmpStopCommands::FCUNPUBLISH.union(RtmpStopCommands::DELETESTREAM);

#[derive(Debug, Clone)]
struct Settings {
    common: CommonSettings,
    chunk_size: u32,
    stop_commands: RtmpStopCommands,
    /// Milliseconds.
    max_hold_time: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            common: CommonSettings::new(DEFAULT_RECONNECT),
            chunk_size: DEFAULT_CHUNK_SIZE,
            stop_commands: DEFAULT_STOP_COMMANDS,
            max_hold_time: DEFAULT_MAX_HOLD_TIME,
        }
    }
}

struct Started {
    config: ClientConfig,
    publish: PublishConfig,
    /// `None` until the first buffer when `async-connect` is false.
    publisher: Option<Arc<Publisher>>,
    demux: FlvDemuxer,
    pacer: Pacer,
    /// The caps carried `streamheader`: buffers flagged HEADER repeat it.
    skip_header_buffers: bool,
}

#[derive(Default)]
enum State {
    #[default]
    Stopped,
    Started(Box<Started>),
}

#[derive(Default)]
pub struct RtmpClientSink {
    settings: Mutex<Settings>,
    state: Mutex<State>,
    flushing: Flushing,
    /// Stats of the last connection, kept after stopping (rtmp2 does the same).
    last_stats: Mutex<Stats>,
    /// Per-track counters of what was given to the connection (kept after stopping too).
    tracks: Tracks,
}

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rtmpclientsink",
        gst::DebugColorFlags::empty(),
        Some("RTMP client sink"),
    )
});

impl RtmpClientSink {
    fn publisher(&self) -> Option<Arc<Publisher>> {
        match &*self.state.lock().unwrap() {
            State::Started(s) => s.publisher.clone(),
            State::Stopped => None,
        }
    }

    fn stats(&self) -> Stats {
        match self.publisher() {
            Some(p) => p.stats(),
            None => self.last_stats.lock().unwrap().clone(),
        }
    }

    fn start_publisher(&self, started: &mut Started) -> Arc<Publisher> {
        let notice = clientcommon::notice_fn(self.obj().upcast_ref(), *CAT, true);
        let publisher = Arc::new(Publisher::start(
            started.config.clone(),
            started.publish.clone(),
            notice,
        ));
        started.publisher = Some(publisher.clone());
        publisher
    }

    /// Parses `data` and hands the frames to the task, starting it if needed. Raw input in
    /// `render()` (of `buffer`, BaseSink's preroll lock held) is paced by its tags when the
    /// sink syncs.
    fn send(
        &self,
        data: Bytes,
        input: Input,
        buffer: Option<&gst::BufferRef>,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let now = match (input, buffer) {
            (Input::Raw, Some(_)) => pacing::pacing_now(self.obj().upcast_ref()),
            _ => None,
        };
        let (publisher, frames) = {
            let mut state = self.state.lock().unwrap();
            let State::Started(started) = &mut *state else {
                return Err(gst::FlowError::Flushing);
            };
            let frames: Vec<MediaFrame> = match input {
                Input::Raw => started.demux.push_files(data),
                Input::Timestamped => started.demux.push(data),
            }
            .map_err(|e| {
                gst::element_imp_error!(self, gst::StreamError::Decode, ("input is not FLV: {e}"));
                gst::FlowError::Error
            })?;
            let frames: Vec<(MediaFrame, Option<gst::ClockTime>)> = frames
                .into_iter()
                .map(|f| {
                    let due = now.map(|now| started.pacer.due(f.timestamp, now));
                    (f, due)
                })
                .collect();
            let publisher = match &started.publisher {
                Some(p) => p.clone(),
                None => self.start_publisher(started),
            };
            (publisher, frames)
        };
        for (frame, due) in frames {
            self.tracks.observe(frame.tag_type(), &frame.payload);
            if let (Some(due), Some(buffer)) = (due, buffer) {
                pacing::wait(self.obj().upcast_ref(), buffer, due)?;
            }
            self.hand_over(&publisher, frame)?;
        }
        Ok(gst::FlowSuccess::Ok)
    }

    /// Hands one frame to the task: at once when its queue has room, which nothing can cut
    /// short; otherwise waits for room, and `unlock()` ends that wait with `Flushing`.
    fn hand_over(&self, publisher: &Publisher, frame: MediaFrame) -> Result<(), gst::FlowError> {
        let gone = |e: crate::net::client::ClientError| {
            // The task posted the error when it failed.
            gst::debug!(CAT, imp = self, "connection gone: {e}");
            gst::FlowError::Error
        };
        let Some(frame) = publisher.try_send(frame).map_err(gone)? else {
            return Ok(());
        };
        match self.flushing.wait(publisher.send(frame)) {
            None => Err(gst::FlowError::Flushing),
            Some(result) => result.map_err(gone),
        }
    }
}

#[glib::object_subclass]
impl ObjectSubclass for RtmpClientSink {
    const NAME: &'static str = "GstRtmpClientSink";
    type Type = super::RtmpClientSink;
    type ParentType = gst_base::BaseSink;
    type Interfaces = (gst::URIHandler,);
}

impl ObjectImpl for RtmpClientSink {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let mut props = clientcommon::properties(
                DEFAULT_RECONNECT,
                "Reconnect after losing a working connection, re-send the headers and resume \
                 at a key frame",
            );
            props.extend([
                glib::ParamSpecUInt::builder("chunk-size")
                    .nick("Chunk size")
                    .blurb("Outgoing RTMP chunk size in bytes")
                    .minimum(1)
                    .maximum(0x7FFF_FFFF)
                    .default_value(DEFAULT_CHUNK_SIZE)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecFlags::builder::<RtmpStopCommands>("stop-commands")
                    .nick("Stop commands")
                    .blurb("Commands sent at end of stream before closing")
                    .default_value(DEFAULT_STOP_COMMANDS)
                    .mutable_ready()
                    .build(),
                glib::ParamSpecUInt::builder("max-hold-time")
                    .nick("Maximum hold time")
                    .blurb(
                        "Milliseconds of media (by timestamp) held while reconnecting; past \
                         it the oldest media is dropped, with a warning and a count in stats \
                         (0: drop everything that arrives while disconnected)",
                    )
                    .default_value(DEFAULT_MAX_HOLD_TIME)
                    .mutable_ready()
                    .build(),
            ]);
            props
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = self.settings.lock().unwrap();
        match pspec.name() {
            "chunk-size" => settings.chunk_size = value.get().expect("type checked"),
            "stop-commands" => settings.stop_commands = value.get().expect("type checked"),
            "max-hold-time" => settings.max_hold_time = value.get().expect("type checked"),
            name => match clientcommon::set_property(&mut settings.common, name, value) {
                Ok(true) => {}
                Ok(false) => unimplemented!("property {name}"),
                Err(e) => gst::warning!(CAT, imp = self, "cannot set {name}: {e}"),
            },
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == "stats" {
            let stats = clientcommon::stats_structure(&self.stats());
            return self.tracks.add_to(stats).to_value();
        }
        let settings = self.settings.lock().unwrap();
        match pspec.name() {
            "chunk-size" => settings.chunk_size.to_value(),
            "stop-commands" => settings.stop_commands.to_value(),
            "max-hold-time" => settings.max_hold_time.to_value(),
            name => clientcommon::property(&settings.common, name)
                .unwrap_or_else(|| unimplemented!("property {name}")),
        }
    }
}

impl GstObjectImpl for RtmpClientSink {}

impl ElementImpl for RtmpClientSink {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "RTMP client sink",
                "Sink/Network",
                "Publishes an FLV stream to an RTMP server, reconnecting when the connection \
                 is lost",
                "rsrtmp developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            vec![crate::elements::flv_pad_template(
                "sink",
                gst::PadDirection::Sink,
            )]
        });
        TEMPLATES.as_ref()
    }
}

impl BaseSinkImpl for RtmpClientSink {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        self.tracks.clear();
        let settings = self.settings.lock().unwrap().clone();
        let config = settings
            .common
            .client_config()
            .map_err(|e| gst::error_msg!(gst::ResourceError::Settings, ("{e}")))?;
        let publish = PublishConfig {
            chunk_size: settings.chunk_size,
            stop_commands: settings.stop_commands.into(),
            max_hold: Duration::from_millis(settings.max_hold_time.into()),
        };
        gst::debug!(
            CAT,
            imp = self,
            "starting, location {}",
            settings.common.location()
        );
        let mut started = Box::new(Started {
            config,
            publish,
            publisher: None,
            demux: FlvDemuxer::new(),
            pacer: Pacer::new(),
            skip_header_buffers: false,
        });
        if settings.common.async_connect {
            self.start_publisher(&mut started);
        }
        *self.state.lock().unwrap() = State::Started(started);
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let state = std::mem::take(&mut *self.state.lock().unwrap());
        if let State::Started(started) = state
            && let Some(publisher) = started.publisher
        {
            *self.last_stats.lock().unwrap() = publisher.stats();
            // Dropping the last handle aborts the task and closes the connection.
        }
        gst::debug!(CAT, imp = self, "stopped");
        Ok(())
    }

    fn set_caps(&self, caps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let headers: Vec<gst::Buffer> = caps
            .structure(0)
            .and_then(|s| s.get::<gst::ArrayRef>("streamheader").ok())
            .map(|array| {
                array
                    .iter()
                    .filter_map(|v| v.get::<gst::Buffer>().ok())
                    .collect()
            })
            .unwrap_or_default();
        if headers.is_empty() {
            return Ok(());
        }
        gst::debug!(
            CAT,
            imp = self,
            "{} streamheader buffers in caps",
            headers.len()
        );
        if let State::Started(started) = &mut *self.state.lock().unwrap() {
            started.skip_header_buffers = true;
        }
        for buffer in headers {
            let map = buffer
                .into_mapped_buffer_readable()
                .map_err(|_| gst::loggable_error!(CAT, "cannot map a streamheader buffer"))?;
            self.send(Bytes::from_owner(map), Input::Timestamped, None)
                .map_err(|e| gst::loggable_error!(CAT, "cannot send streamheader: {e:?}"))?;
        }
        Ok(())
    }

    fn render(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let (skip, input) = match &mut *self.state.lock().unwrap() {
            State::Started(s) => (s.skip_header_buffers, s.pacer.input(buffer)),
            State::Stopped => return Err(gst::FlowError::Flushing),
        };
        if skip && buffer.flags().contains(gst::BufferFlags::HEADER) {
            gst::log!(
                CAT,
                imp = self,
                "skipping a header buffer already sent from caps"
            );
            return Ok(gst::FlowSuccess::Ok);
        }
        let map = buffer.clone().into_mapped_buffer_readable().map_err(|_| {
            gst::element_imp_error!(self, gst::CoreError::Failed, ("cannot map buffer"));
            gst::FlowError::Error
        })?;
        self.send(Bytes::from_owner(map), input, Some(buffer))
    }

    fn event(&self, event: gst::Event) -> bool {
        if let State::Started(started) = &mut *self.state.lock().unwrap() {
            match event.view() {
                gst::EventView::Segment(e) => started.pacer.segment(e.segment().format()),
                // Running time starts again after a flush: so does the pacing.
                gst::EventView::FlushStop(_) => started.pacer.reanchor(),
                _ => {}
            }
        }
        if let gst::EventView::Eos(_) = event.view()
            && let Some(publisher) = self.publisher()
        {
            gst::debug!(CAT, imp = self, "end of stream: sending the stop commands");
            match self.flushing.wait(publisher.finish()) {
                Some(Ok(())) => gst::debug!(CAT, imp = self, "closed cleanly"),
                Some(Err(e)) => gst::debug!(CAT, imp = self, "not closed cleanly: {e}"),
                None => gst::debug!(CAT, imp = self, "flushing while finishing"),
            }
        }
        self.parent_event(event)
    }

    fn unlock(&self) -> Result<(), gst::ErrorMessage> {
        self.flushing.set(true);
        Ok(())
    }

    fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
        self.flushing.set(false);
        Ok(())
    }
}

impl URIHandlerImpl for RtmpClientSink {
    const URI_TYPE: gst::URIType = gst::URIType::Sink;

    fn protocols() -> &'static [&'static str] {
        clientcommon::SUPPORTED_SCHEMES
    }

    fn uri(&self) -> Option<String> {
        Some(self.settings.lock().unwrap().common.location())
    }

    fn set_uri(&self, uri: &str) -> Result<(), glib::Error> {
        self.settings.lock().unwrap().common.set_location(uri)
    }
}
