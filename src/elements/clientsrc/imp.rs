//! rtmpclientsrc: RTMP play in, FLV out.
//!
//! The connection task (`crate::net::client::Player`) hands over media frames; `create()`
//! turns them into FLV buffers. `create()` drives that task itself while it waits, so a
//! message goes from the socket to a buffer on the streaming thread, without a thread switch. The first buffers are the FLV header, the metadata and the
//! sequence headers, flagged HEADER and also put into the caps as `streamheader`, so
//! `flvdemux` (and playbin) work unchanged. DTS is the RTMP timestamp extended to 64 bits,
//! PTS adds the composition time. After a reconnect the first buffer is flagged DISCONT and
//! the new headers follow (the FLV header is not repeated).
//!
//! `unlock()` cancels only the wait in `create()`: a live source is unlocked on every
//! PLAYING→PAUSED, and pausing must keep the connection.

use std::collections::VecDeque;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::base_src::CreateSuccess;
use gst_base::subclass::prelude::*;

use crate::elements::clientcommon::{self, CommonSettings, Flushing};
use crate::elements::enhanced::{self, Enhanced, Gate, Pass};
use crate::elements::tracks::Tracks;
use crate::net::client::media::{self, HeaderSet, MediaFrame, MediaKind};
use crate::net::client::{ClientConfig, PlayConfig, PlayItem, Player, Stats};
use rsrtmp_engine::eflv::MediaKind as EflvKind;

const DEFAULT_IDLE_TIMEOUT: u32 = 0;
const DEFAULT_NO_EOF_IS_ERROR: bool = false;
const DEFAULT_RECONNECT: bool = true;

#[derive(Debug, Clone)]
struct Settings {
    common: CommonSettings,
    /// Seconds; 0 = off.
    idle_timeout: u32,
    no_eof_is_error: bool,
    enhanced: Enhanced,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            common: CommonSettings::new(DEFAULT_RECONNECT),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            no_eof_is_error: DEFAULT_NO_EOF_IS_ERROR,
            enhanced: Enhanced::default(),
        }
    }
}

struct Started {
    config: ClientConfig,
    play: PlayConfig,
    /// `None` until the first `create()` when `async-connect` is false.
    player: Option<Arc<Player>>,
}

#[derive(Default)]
enum State {
    #[default]
    Stopped,
    Started(Box<Started>),
}

/// Media held back while the stream header is collected: at most this span of timestamps.
const COLLECT_MAX_SPAN_MS: u64 = 2000;
/// … and at most this many frames.
const COLLECT_MAX_FRAMES: usize = 300;

/// What `create()` builds its output from; only the streaming thread touches it.
#[derive(Default)]
struct Output {
    /// Buffers ready to push, in order.
    pending: VecDeque<gst::Buffer>,
    /// The stream header is complete and the caps are set.
    headers_done: bool,
    /// Latest metadata and every track's sequence header while collecting.
    headers: HeaderSet,
    /// Media that came before the headers were complete (servers often send the audio
    /// sequence header after the first video frame).
    held: Vec<MediaFrame>,
    /// The FLV file header, once it went out (it is not repeated after a reconnect, and leads
    /// every `streamheader`).
    file_header: Option<gst::Buffer>,
    /// Mark the next buffer DISCONT.
    discont: bool,
    /// The last streamheader put in caps, to avoid setting equal caps again.
    caps_headers: Vec<Vec<u8>>,
    /// The task reported the end; nothing more will come.
    eos: bool,
    /// What of an Enhanced RTMP stream goes downstream (`enhanced`).
    gate: Gate,
    /// The gate decided for the current connection.
    gate_begun: bool,
}

impl Output {
    /// Queues a buffer, marking it DISCONT when it is the first after a reconnect.
    fn push(&mut self, mut buffer: gst::Buffer) {
        if std::mem::take(&mut self.discont) {
            buffer.make_mut().set_flags(gst::BufferFlags::DISCONT);
        }
        self.pending.push_back(buffer);
    }

    /// Whether every header the stream needs is here, or waiting longer makes no sense.
    fn headers_complete(&self) -> bool {
        let info = self.metadata_info();
        let held = |kind| self.held.iter().any(|f| f.kind == kind && f.needs_config);
        // A track left out for a legacy reader sends no header either.
        let dropped = |kind| {
            self.gate.drops_track0(match kind {
                MediaKind::Video => EflvKind::Video,
                _ => EflvKind::Audio,
            })
        };
        let want_video = !dropped(MediaKind::Video)
            && (info.is_some_and(|i| i.video_config) || held(MediaKind::Video));
        let want_audio = !dropped(MediaKind::Audio)
            && (info.is_some_and(|i| i.audio_config) || held(MediaKind::Audio));
        let have_all = (!want_video || self.headers.has(MediaKind::Video))
            && (!want_audio || self.headers.has(MediaKind::Audio));
        // Without metadata the first media frames tell what to wait for.
        let known = info.is_some() || !self.held.is_empty();
        let span = match (self.held.first(), self.held.last()) {
            (Some(a), Some(b)) => b.timestamp.saturating_sub(a.timestamp),
            _ => 0,
        };
        (known && have_all) || span > COLLECT_MAX_SPAN_MS || self.held.len() >= COLLECT_MAX_FRAMES
    }

    /// What the latest metadata says, if there is some.
    fn metadata_info(&self) -> Option<media::StreamInfo> {
        self.headers
            .iter()
            .find(|f| f.kind == MediaKind::Data)
            .and_then(|m| media::metadata_info(&m.payload))
    }

    /// The FLV header's audio and video flags.
    fn announced(&self) -> (bool, bool) {
        let info = self.metadata_info();
        let seen = |kind| self.held.iter().any(|f| f.kind == kind) || self.headers.has(kind);
        let audio = (info.is_some_and(|i| i.has_audio) && !self.gate.drops_track0(EflvKind::Audio))
            || seen(MediaKind::Audio);
        let video = (info.is_some_and(|i| i.has_video) && !self.gate.drops_track0(EflvKind::Video))
            || seen(MediaKind::Video);
        // Without any hint, announce both: flvdemux then takes whichever comes.
        if audio || video {
            (audio, video)
        } else {
            (true, true)
        }
    }
}

#[derive(Default)]
pub struct RtmpClientSrc {
    settings: Mutex<Settings>,
    state: Mutex<State>,
    output: Mutex<Output>,
    flushing: Flushing,
    last_stats: Mutex<Stats>,
    /// The caps last set, with their `streamheader` (see `negotiate`).
    caps: Mutex<Option<gst::Caps>>,
    /// Per-track counters of what was received (kept after stopping, like the stats).
    tracks: Tracks,
}

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rtmpclientsrc",
        gst::DebugColorFlags::empty(),
        Some("RTMP client source"),
    )
});

fn ms(ms: u64) -> gst::ClockTime {
    gst::ClockTime::from_mseconds(ms)
}

fn tag_buffer(frame: &MediaFrame) -> Result<gst::Buffer, String> {
    let bytes = media::flv_tag(frame).map_err(|e| e.to_string())?;
    let mut buffer = gst::Buffer::from_slice(bytes);
    {
        let b = buffer.get_mut().expect("new buffer is writable");
        let dts = frame.timestamp;
        let pts = if frame.kind == MediaKind::Video {
            dts.saturating_add_signed(frame.composition_time.into())
        } else {
            dts
        };
        b.set_dts(ms(dts));
        b.set_pts(ms(pts));
        if frame.header {
            b.set_flags(gst::BufferFlags::HEADER);
        }
        if frame.kind == MediaKind::Video && !frame.keyframe && !frame.header {
            b.set_flags(gst::BufferFlags::DELTA_UNIT);
        }
    }
    Ok(buffer)
}

impl RtmpClientSrc {
    fn player(&self) -> Result<Arc<Player>, gst::FlowError> {
        let mut state = self.state.lock().unwrap();
        let State::Started(started) = &mut *state else {
            return Err(gst::FlowError::Flushing);
        };
        Ok(match &started.player {
            Some(p) => p.clone(),
            None => {
                let p = Arc::new(self.start_player(started));
                started.player = Some(p.clone());
                p
            }
        })
    }

    fn start_player(&self, started: &Started) -> Player {
        let notice = clientcommon::notice_fn(self.obj().upcast_ref(), *CAT, false);
        Player::start(started.config.clone(), started.play.clone(), notice)
    }

    fn stats(&self) -> Stats {
        let player = match &*self.state.lock().unwrap() {
            State::Started(s) => s.player.clone(),
            State::Stopped => None,
        };
        match player {
            Some(p) => p.stats(),
            None => self.last_stats.lock().unwrap().clone(),
        }
    }

    /// Ends header collection: caps with `streamheader`, then the header buffers and the
    /// media held meanwhile, queued in that order.
    fn finish_headers(&self, out: &mut Output) -> Result<(), gst::FlowError> {
        if out.headers_done {
            return Ok(());
        }
        out.headers_done = true;
        let first = out.file_header.is_none();
        if first {
            let (audio, video) = out.announced();
            let mut header = gst::Buffer::from_slice(media::flv_header(audio, video));
            header
                .get_mut()
                .expect("new buffer is writable")
                .set_flags(gst::BufferFlags::HEADER);
            out.file_header = Some(header);
        }
        let buffers = self.update_caps(out)?;
        // The FLV header goes out once per output stream; a reconnect continues it.
        for buffer in buffers.into_iter().skip(usize::from(!first)) {
            out.push(buffer);
        }
        for frame in std::mem::take(&mut out.held) {
            out.push(self.tag_buffer(&frame)?);
        }
        Ok(())
    }

    fn tag_buffer(&self, frame: &MediaFrame) -> Result<gst::Buffer, gst::FlowError> {
        tag_buffer(frame).map_err(|e| {
            gst::element_imp_error!(self, gst::StreamError::Format, ("{e}"));
            gst::FlowError::Error
        })
    }

    /// Sets caps whose `streamheader` is the FLV header, the metadata and every track's
    /// configuration (when that changed); returns those buffers.
    fn update_caps(&self, out: &mut Output) -> Result<Vec<gst::Buffer>, gst::FlowError> {
        let mut buffers: Vec<gst::Buffer> = out.file_header.iter().cloned().collect();
        for frame in out.headers.iter() {
            buffers.push(self.tag_buffer(frame)?);
        }
        let bytes: Vec<Vec<u8>> = buffers
            .iter()
            .map(|b| b.map_readable().map(|m| m.to_vec()).unwrap_or_default())
            .collect();
        if bytes != out.caps_headers {
            let array = gst::Array::new(buffers.iter().cloned());
            let caps = gst::Caps::builder("video/x-flv")
                .field("streamheader", array)
                .build();
            gst::debug!(
                CAT,
                imp = self,
                "caps with {} streamheader buffers",
                buffers.len()
            );
            // Caps go downstream before the buffers they describe.
            *self.caps.lock().unwrap() = Some(caps.clone());
            self.obj().set_caps(&caps).map_err(|_| {
                gst::element_imp_error!(self, gst::CoreError::Negotiation, ("cannot set caps"));
                gst::FlowError::NotNegotiated
            })?;
            out.caps_headers = bytes;
        }
        Ok(buffers)
    }

    /// Applies `enhanced`: the frame as it goes downstream, if it does.
    fn gate(
        &self,
        out: &mut Output,
        frame: MediaFrame,
    ) -> Result<Option<MediaFrame>, gst::FlowError> {
        let element = self.obj();
        let element = element.upcast_ref::<gst::Element>();
        if !out.gate_begun {
            out.gate_begun = true;
            out.gate
                .begin(&element.static_pad("src").expect("always pad"));
        }
        if !out.gate.filtering() {
            return Ok(Some(frame));
        }
        let pass = out
            .gate
            .pass(element, frame.tag_type(), frame.timestamp, &frame.payload)?;
        Ok(match pass {
            Pass::Keep => Some(frame),
            Pass::Replace(body) => Some(MediaFrame::new(frame.kind, frame.timestamp, body)),
            Pass::Skip => None,
        })
    }

    fn accept(&self, out: &mut Output, frame: MediaFrame) -> Result<(), gst::FlowError> {
        if out.headers_done {
            let buffer = self.tag_buffer(&frame)?;
            if out.headers.remember(&frame) {
                // A new or changed configuration (a track that starts late): into the caps.
                self.update_caps(out)?;
            }
            out.push(buffer);
            return Ok(());
        }
        // Headers are collected until media comes: every track's, however many there are.
        if !out.headers.remember(&frame) {
            out.held.push(frame);
            if out.headers_complete() {
                self.finish_headers(out)?;
            }
        }
        Ok(())
    }
}

#[glib::object_subclass]
impl ObjectSubclass for RtmpClientSrc {
    const NAME: &'static str = "GstRtmpClientSrc";
    type Type = super::RtmpClientSrc;
    type ParentType = gst_base::PushSrc;
    type Interfaces = (gst::URIHandler,);
}

impl ObjectImpl for RtmpClientSrc {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let mut props = clientcommon::properties(
                DEFAULT_RECONNECT,
                "Reconnect after losing a working connection (not after the end of the \
                 stream), marking a discontinuity",
            );
            props.extend([
                glib::ParamSpecUInt::builder("idle-timeout")
                    .nick("Idle timeout")
                    .blurb("Seconds without media after which the stream ends (EOS); 0 = off")
                    .default_value(DEFAULT_IDLE_TIMEOUT)
                    .mutable_ready()
                    .build(),
                enhanced::property(),
                glib::ParamSpecBoolean::builder("no-eof-is-error")
                    .nick("No EOF is error")
                    .blurb(
                        "When the connection closes without StreamEOF (and is not \
                         reconnected), post an error instead of ending the stream",
                    )
                    .default_value(DEFAULT_NO_EOF_IS_ERROR)
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
            "idle-timeout" => settings.idle_timeout = value.get().expect("type checked"),
            "no-eof-is-error" => settings.no_eof_is_error = value.get().expect("type checked"),
            "enhanced" => settings.enhanced = value.get().expect("type checked"),
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
            "idle-timeout" => settings.idle_timeout.to_value(),
            "no-eof-is-error" => settings.no_eof_is_error.to_value(),
            "enhanced" => settings.enhanced.to_value(),
            name => clientcommon::property(&settings.common, name)
                .unwrap_or_else(|| unimplemented!("property {name}")),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.set_live(true);
        obj.set_format(gst::Format::Time);
        obj.set_do_timestamp(false);
    }
}

impl GstObjectImpl for RtmpClientSrc {}

impl ElementImpl for RtmpClientSrc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "RTMP client source",
                "Source/Network",
                "Plays a stream from an RTMP server as FLV, reconnecting when the connection \
                 is lost",
                "rsrtmp developers",
            )
        });
        Some(&*META)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            vec![crate::elements::flv_pad_template(
                "src",
                gst::PadDirection::Src,
            )]
        });
        TEMPLATES.as_ref()
    }
}

impl BaseSrcImpl for RtmpClientSrc {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        self.tracks.clear();
        let settings = self.settings.lock().unwrap().clone();
        let config = settings
            .common
            .client_config()
            .map_err(|e| gst::error_msg!(gst::ResourceError::Settings, ("{e}")))?;
        let play = PlayConfig {
            idle_timeout: (settings.idle_timeout > 0)
                .then(|| Duration::from_secs(settings.idle_timeout.into())),
            no_eof_is_error: settings.no_eof_is_error,
        };
        gst::debug!(
            CAT,
            imp = self,
            "starting, location {}",
            settings.common.location()
        );
        let mut started = Box::new(Started {
            config,
            play,
            player: None,
        });
        if settings.common.async_connect {
            started.player = Some(Arc::new(self.start_player(&started)));
        }
        *self.output.lock().unwrap() = Output {
            gate: Gate::new(settings.enhanced),
            ..Output::default()
        };
        *self.state.lock().unwrap() = State::Started(started);
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let state = std::mem::take(&mut *self.state.lock().unwrap());
        if let State::Started(started) = state
            && let Some(player) = started.player
        {
            *self.last_stats.lock().unwrap() = player.stats();
        }
        *self.output.lock().unwrap() = Output::default();
        *self.caps.lock().unwrap() = None;
        gst::debug!(CAT, imp = self, "stopped");
        Ok(())
    }

    fn negotiate(&self) -> Result<(), gst::LoggableError> {
        // BaseSrc negotiates again on every RECONFIGURE (a pad linked downstream, as a
        // demuxer does when it adds one) and would fall back to the template caps, dropping
        // the `streamheader`: once there are caps of ours, they are the answer.
        let caps = self.caps.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match caps {
            Some(caps) => self
                .obj()
                .set_caps(&caps)
                .map_err(|_| gst::loggable_error!(CAT, "downstream refused {caps}")),
            None => self.parent_negotiate(),
        }
    }

    fn is_seekable(&self) -> bool {
        false
    }

    fn unlock(&self) -> Result<(), gst::ErrorMessage> {
        self.flushing.set(true);
        // `create()` stops driving the connection now; keep it answering the server while
        // paused (PLAYING→PAUSED unlocks a live source).
        if let State::Started(started) = &*self.state.lock().unwrap()
            && let Some(player) = &started.player
        {
            player.interrupt();
            player.drive_in_background();
        }
        Ok(())
    }

    fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
        self.flushing.set(false);
        Ok(())
    }
}

impl PushSrcImpl for RtmpClientSrc {
    fn create(
        &self,
        _buffer: Option<&mut gst::BufferRef>,
    ) -> Result<CreateSuccess, gst::FlowError> {
        // Only this thread locks `output`, so holding it across the wait blocks no one.
        let mut out = self.output.lock().unwrap();
        loop {
            if let Some(buffer) = out.pending.pop_front() {
                return Ok(CreateSuccess::NewBuffer(buffer));
            }
            if out.eos {
                gst::info!(CAT, imp = self, "end of stream");
                return Err(gst::FlowError::Eos);
            }
            let player = self.player()?;
            // The connection is driven right here while waiting (see `Player`).
            let Some(item) = player.next(&|| self.flushing.is_set()) else {
                gst::debug!(CAT, imp = self, "unlocked");
                return Err(gst::FlowError::Flushing);
            };
            match item {
                PlayItem::Frame(frame) => {
                    self.tracks.observe(frame.tag_type(), &frame.payload);
                    let Some(frame) = self.gate(&mut out, frame)? else {
                        continue;
                    };
                    self.accept(&mut out, frame)?
                }
                PlayItem::Discont => {
                    gst::info!(CAT, imp = self, "reconnected: discontinuity");
                    // Whatever was held belongs to the old connection: out before the new
                    // headers are collected.
                    self.finish_headers(&mut out)?;
                    out.discont = true;
                    out.headers_done = false;
                    out.gate_begun = false;
                    // The new connection sends its own.
                    out.headers = HeaderSet::default();
                }
                PlayItem::Eos => {
                    out.gate.finish(self.obj().upcast_ref())?;
                    // Headers still being collected go out before the end.
                    self.finish_headers(&mut out)?;
                    out.eos = true;
                }
                PlayItem::Error(e) => {
                    gst::error!(CAT, imp = self, "{e}");
                    self.post_error_message(clientcommon::error_message(&e, false));
                    return Err(gst::FlowError::Error);
                }
            }
        }
    }
}

impl URIHandlerImpl for RtmpClientSrc {
    const URI_TYPE: gst::URIType = gst::URIType::Src;

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
