//! rtmpserversink: a BaseSink that serves the FLV it receives to every player the shared
//! listener routes to it.
//!
//! `render()` parses FLV (split anywhere across buffers) into messages, chunk-encodes each
//! message once and hands the bytes to the route's [`Hub`], which shares them with every
//! player's bounded queue. Nothing in `render()` waits on a player: a slow player skips to the
//! next keyframe instead of holding the pipeline back. At EOS every player is told the stream
//! ended, and the EOS is held until they collected it and hung up (`linger` seconds at most):
//! an application that stops the pipeline at EOS must not take the port away from a tunnel
//! player that polls for the tail. Stopping mid-stream does the same. A later stream on the
//! same sink starts fresh for new players.
//!
//! With `sync=true`, raw FLV (buffers without timestamps, from `filesrc`) is paced by its tag
//! timestamps (`crate::elements::pacing`); that wait is the only one in `render()`, it holds no
//! lock of ours, and it paces the input, never a player. Raw FLV that starts again (a loop, the
//! next file) continues the players' timeline.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;

use crate::elements::enhanced::{self, Policy};
use crate::elements::pacing::{self, Input, Pacer};
use crate::elements::serverprops::{self, ElementHooks, ListenSettings, announced_codecs};
use crate::elements::tracks::Tracks;
use crate::net::server::hub::{DEFAULT_QUEUE_LIMIT, Hub, HubConfig};
use crate::net::server::playout::{FlvPlayout, publish_batch, publish_message};
use crate::net::server::{self, Endpoint, RouteGuard};
use crate::rtmp::message::Message;

const DEFAULT_GOP_CACHE: bool = true;
const DEFAULT_QUEUE_SIZE: u32 = DEFAULT_QUEUE_LIMIT as u32;

#[derive(Debug, Clone)]
struct Settings {
    listen: ListenSettings,
    gop_cache: bool,
    queue_size: u32,
    policy: Policy,
    merge_window: u32,
    /// Milliseconds; 0 = off.
    queue_time: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: ListenSettings::default(),
            gop_cache: DEFAULT_GOP_CACHE,
            queue_size: DEFAULT_QUEUE_SIZE,
            policy: Policy::default(),
            merge_window: 0,
            queue_time: 0,
        }
    }
}

#[derive(Default)]
enum State {
    #[default]
    Stopped,
    Started {
        route: RouteGuard,
        hub: Arc<Hub>,
        playout: Box<FlvPlayout>,
        pacer: Pacer,
    },
}

#[derive(Default)]
pub struct RtmpServerSink {
    settings: Mutex<Settings>,
    state: Mutex<State>,
    /// Set by `unlock()`: a wait for players to drain ends at once.
    unlocked: AtomicBool,
    /// Per-track counters of what the sink was given (`stats`' `tracks`).
    tracks: Tracks,
}

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rtmpserversink",
        gst::DebugColorFlags::empty(),
        Some("RTMP server sink"),
    )
});

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl RtmpServerSink {
    /// Waits until every player told the stream ended has collected what it was sent and
    /// hung up — a tunnel player only gets the tail of the stream at its next poll, and the
    /// port must still be there for it — `linger` at most, or until `unlock()`.
    fn wait_for_players(&self, hub: &Hub, linger: Duration) {
        let deadline = Instant::now() + linger;
        let mut left = hub.draining();
        if left > 0 {
            gst::debug!(
                CAT,
                imp = self,
                "waiting up to {linger:?} for {left} players"
            );
        }
        while left > 0 && Instant::now() < deadline && !self.unlocked.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
            left = hub.draining();
        }
        if left > 0 {
            gst::info!(
                CAT,
                imp = self,
                "{left} players still had not hung up after {linger:?}: closing them"
            );
        }
    }

    fn request_reconnect(&self, tc_url: String, description: String) -> u32 {
        let State::Started { hub, .. } = &*lock(&self.state) else {
            return 0;
        };
        let tc_url = (!tc_url.is_empty()).then_some(tc_url);
        let asked = hub.request_reconnect(tc_url.clone(), description);
        gst::info!(
            CAT,
            imp = self,
            "reconnect request to {tc_url:?}: sent to {asked} players"
        );
        asked
    }

    /// The messages of one input buffer, each with the time it is due at when the input is
    /// paced raw FLV; and the hub they go to.
    #[allow(clippy::type_complexity)]
    fn parse(
        &self,
        buffer: &gst::Buffer,
    ) -> Result<(Arc<Hub>, Vec<(Option<gst::ClockTime>, Message)>), gst::FlowError> {
        // The parser keeps slices of the mapped buffer: tag bodies are not copied.
        let map = buffer.clone().into_mapped_buffer_readable().map_err(|_| {
            gst::element_imp_error!(self, gst::CoreError::Failed, ["cannot map buffer"]);
            gst::FlowError::Error
        })?;
        let data = bytes::Bytes::from_owner(map);
        let now = pacing::pacing_now(self.obj().upcast_ref());
        let (hub, tags) = {
            let mut state = lock(&self.state);
            let State::Started {
                hub,
                playout,
                pacer,
                ..
            } = &mut *state
            else {
                return Err(gst::FlowError::Flushing);
            };
            let input = pacer.input(buffer);
            let tags = match playout.parse(data, input == Input::Raw) {
                Ok(tags) => tags,
                Err(e) => {
                    drop(state);
                    gst::element_imp_error!(self, gst::StreamError::Decode, ["{e}"]);
                    return Err(gst::FlowError::Error);
                }
            };
            let now = now.filter(|_| input == Input::Raw);
            let tags: Vec<_> = tags
                .into_iter()
                .map(|tag| (now.map(|now| pacer.due(tag.time, now)), tag.message))
                .collect();
            (hub.clone(), tags)
        };
        Ok((hub, tags))
    }

    fn stats(&self) -> gst::Structure {
        let (players, late_drops) = match &*lock(&self.state) {
            State::Started { hub, .. } => (hub.stats(), hub.late_drops()),
            State::Stopped => (Vec::new(), 0),
        };
        let clients = gst::Array::new(players.iter().map(|p| {
            gst::Structure::builder("client")
                .field("address", p.peer.to_string())
                .field("bytes", p.bytes)
                .field("drops", p.drops)
                .field("sends", p.sends)
                .field("transport", p.transport)
                .field("shared-bytes", p.shared_bytes)
                .field("enhanced-codecs", announced_codecs(p.announced.as_deref()))
                .field("caps-ex", p.announced.as_ref().map_or(0, |c| c.caps_ex))
                .build()
                .to_send_value()
        }));
        let stats = gst::Structure::builder("application/x-rtmp-server-stats")
            .field("clients", players.len() as u32)
            .field("client-stats", clients)
            .field("late-drops", late_drops)
            .build();
        self.tracks.add_to(stats)
    }
}

#[glib::object_subclass]
impl ObjectSubclass for RtmpServerSink {
    const NAME: &'static str = "GstRsRtmpServerSink";
    type Type = super::RtmpServerSink;
    type ParentType = gst_base::BaseSink;
}

impl ObjectImpl for RtmpServerSink {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let mut props = ListenSettings::properties();
            props.push(
                glib::ParamSpecBoolean::builder("gop-cache")
                    .nick("GOP cache")
                    .blurb("Give new players the frames since the last keyframe so playback starts at once")
                    .default_value(DEFAULT_GOP_CACHE)
                    .mutable_ready()
                    .build(),
            );
            props.push(
                glib::ParamSpecUInt::builder("queue-size")
                    .nick("Queue size")
                    .blurb("Bytes queued per player before it skips to the next keyframe (also bounds the GOP cache)")
                    .minimum(64 * 1024)
                    .default_value(DEFAULT_QUEUE_SIZE)
                    .mutable_ready()
                    .build(),
            );
            props.push(enhanced::policy_property());
            props.push(
                glib::ParamSpecUInt::builder("merge-window")
                    .nick("Merge window")
                    .blurb("Milliseconds of messages each player gets in one write (SRS's merged writes: fewer sends, up to this much added latency); 0 sends every message at once")
                    .maximum(2000)
                    .default_value(0)
                    .mutable_ready()
                    .build(),
            );
            props.push(
                glib::ParamSpecUInt::builder("queue-time")
                    .nick("Queue time")
                    .blurb("Milliseconds a player's oldest queued message may wait (beyond merge-window) before its queued media is dropped and it skips to the next keyframe, so a slow player lags at most about this much; media reaching the sink this much later than the stream's pace (the server or the pipeline cannot keep up) is dropped for every player up to the next keyframe (stats: late-drops), and a player reached so late into a delivery that the message is past this bound skips to the next keyframe; 0: off, only queue-size bounds the queues")
                    .maximum(600_000)
                    .default_value(0)
                    .mutable_ready()
                    .build(),
            );
            props.push(
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb("clients, and per client: address, bytes, drops, sends (socket writes), transport, shared-bytes (zero-copy), enhanced-codecs and caps-ex (what its connect announced); late-drops (media dropped for everyone because it came later than queue-time); tracks: per track kind, id, codec (FourCC), enhanced, frames, keyframes, bytes (of what the sink was given)")
                    .read_only()
                    .build(),
            );
            props
        });
        PROPS.as_ref()
    }

    fn signals() -> &'static [glib::subclass::Signal] {
        static SIGNALS: LazyLock<Vec<glib::subclass::Signal>> = LazyLock::new(|| {
            let mut signals = serverprops::signals();
            // request-reconnect(tc-url, description) -> players asked: an Enhanced RTMP
            // ReconnectRequest to every player that announced it handles them ("" = the same
            // place).
            signals.push(serverprops::request_reconnect_signal(
                |e: &super::RtmpServerSink, tc_url, description| {
                    e.imp().request_reconnect(tc_url, description)
                },
            ));
            signals
        });
        SIGNALS.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = lock(&self.settings);
        if settings.listen.set(pspec.name(), value) {
            return;
        }
        match pspec.name() {
            "gop-cache" => settings.gop_cache = value.get().expect("type checked"),
            "queue-size" => settings.queue_size = value.get().expect("type checked"),
            "enhanced-policy" => settings.policy = value.get().expect("type checked"),
            "merge-window" => settings.merge_window = value.get().expect("type checked"),
            "queue-time" => settings.queue_time = value.get().expect("type checked"),
            other => unimplemented!("property {other}"),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == "stats" {
            return self.stats().to_value();
        }
        let bound = match &*lock(&self.state) {
            State::Started { route, .. } => Some(route.local_addr().port()),
            State::Stopped => None,
        };
        let settings = lock(&self.settings);
        if let Some(v) = settings.listen.get(pspec.name(), bound) {
            return v;
        }
        match pspec.name() {
            "gop-cache" => settings.gop_cache.to_value(),
            "queue-size" => settings.queue_size.to_value(),
            "enhanced-policy" => settings.policy.to_value(),
            "merge-window" => settings.merge_window.to_value(),
            "queue-time" => settings.queue_time.to_value(),
            other => unimplemented!("property {other}"),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        // Pacing is upstream's job (a live source or a publisher); a server should pass on
        // what it gets as soon as it gets it. `sync=true` paces a file (raw FLV too).
        self.obj().set_sync(false);
    }
}

impl GstObjectImpl for RtmpServerSink {}

impl ElementImpl for RtmpServerSink {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "RTMP server sink",
                "Sink/Network",
                "Serves the FLV stream it receives to any number of RTMP players",
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

impl BaseSinkImpl for RtmpServerSink {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        self.tracks.clear();
        let settings = lock(&self.settings).clone();
        let addr = settings.listen.socket_addr()?;
        settings.listen.check()?;
        let hub = Arc::new(Hub::new(HubConfig {
            gop_cache: settings.gop_cache,
            queue_limit: settings.queue_size as usize,
            strict: settings.policy == Policy::Strict,
            merge_window: (settings.merge_window > 0)
                .then(|| Duration::from_millis(settings.merge_window.into())),
            queue_time: (settings.queue_time > 0)
                .then(|| Duration::from_millis(settings.queue_time.into())),
        }));
        let hooks = Arc::new(ElementHooks {
            element: self.obj().downgrade(),
        });
        let config = settings
            .listen
            .route_config(Endpoint::Playout(hub.clone()), hooks);
        let route = server::add_route(addr, config)
            .map_err(|e| gst::error_msg!(gst::ResourceError::OpenWrite, ["{e}"]))?;
        gst::info!(
            CAT,
            imp = self,
            "serving players on rtmp://{}/{}/{}",
            route.local_addr(),
            settings.listen.application,
            settings.listen.stream
        );
        *lock(&self.state) = State::Started {
            route,
            hub,
            playout: Box::new(FlvPlayout::new()),
            pacer: Pacer::new(),
        };
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let state = std::mem::take(&mut *lock(&self.state));
        if let State::Started { hub, route, .. } = state {
            // Stopped in the middle of a stream: its players are told it ended, as at EOS,
            // and get the same time to collect that before the port goes.
            if hub.player_count() > 0 {
                hub.end_stream();
            }
            self.wait_for_players(&hub, route.linger());
            hub.close_all();
            drop(route);
        }
        Ok(())
    }

    fn unlock(&self) -> Result<(), gst::ErrorMessage> {
        self.unlocked.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
        self.unlocked.store(false, Ordering::SeqCst);
        Ok(())
    }

    fn render(&self, buffer: &gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let (hub, tags) = self.parse(buffer)?;
        for (due, message) in tags {
            self.tracks.observe(message.type_id, &message.payload);
            if let Some(due) = due {
                pacing::wait(self.obj().upcast_ref(), buffer, due)?;
            }
            publish_message(&hub, message);
        }
        Ok(gst::FlowSuccess::Ok)
    }

    /// Buffers that came together (rtmpserversrc hands a publisher's backlog over as one
    /// list): their messages go to each player in one send. Paced input (raw FLV with
    /// `sync=true`) still goes message by message, each at its time.
    fn render_list(&self, list: &gst::BufferList) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut batch = Vec::new();
        let mut hub = None;
        for buffer in list.iter_owned() {
            let (h, tags) = self.parse(&buffer)?;
            for (due, message) in tags {
                self.tracks.observe(message.type_id, &message.payload);
                match due {
                    None => batch.push(message),
                    Some(due) => {
                        publish_batch(&h, batch.drain(..));
                        pacing::wait(self.obj().upcast_ref(), &buffer, due)?;
                        publish_message(&h, message);
                    }
                }
            }
            hub = Some(h);
        }
        if let Some(hub) = hub {
            publish_batch(&hub, batch);
        }
        Ok(gst::FlowSuccess::Ok)
    }

    fn event(&self, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Eos(_) => {
                let ended = match &mut *lock(&self.state) {
                    State::Started {
                        hub,
                        playout,
                        route,
                        pacer,
                    } => {
                        gst::info!(
                            CAT,
                            imp = self,
                            "end of stream: telling {} players",
                            hub.player_count()
                        );
                        playout.end(hub);
                        pacer.reset();
                        Some((hub.clone(), route.linger()))
                    }
                    State::Stopped => None,
                };
                // The EOS goes on (and an application such as gst-launch stops the pipeline
                // and with it the port) only once the players have the end of the stream.
                if let Some((hub, linger)) = ended {
                    self.wait_for_players(&hub, linger);
                }
            }
            gst::EventView::StreamStart(_) => {
                if let State::Started { playout, .. } = &mut *lock(&self.state) {
                    playout.reset();
                }
            }
            gst::EventView::Segment(e) => {
                if let State::Started { pacer, .. } = &mut *lock(&self.state) {
                    pacer.segment(e.segment().format());
                }
            }
            gst::EventView::FlushStop(_) => {
                // Running time starts again after a flush: so does the pacing.
                if let State::Started { pacer, .. } = &mut *lock(&self.state) {
                    pacer.reanchor();
                }
            }
            _ => {}
        }
        self.parent_event(event)
    }
}
