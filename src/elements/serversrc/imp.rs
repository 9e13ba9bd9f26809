//! rtmpserversrc: a live PushSrc fed by the publisher that the shared listener routes to it.
//!
//! `start()` adds this element's route to the listener of its address (binding it if no other
//! element did); the publisher's connection task sends its messages down a bounded channel,
//! and `create()` turns them into FLV buffers ([`crate::net::server::ingest::FlvOutput`]). `create()`
//! is the only place that waits, and `unlock()` cancels only that wait: the route and any
//! publisher stay, as a live source is unlocked on every PLAYING→PAUSED.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::base_src::CreateSuccess;
use gst_base::subclass::prelude::*;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::elements::enhanced::{self, Enhanced, Gate, Pass};
use crate::elements::serverprops::{self, ElementHooks, ListenSettings, announced_codecs};
use crate::elements::tracks::Tracks;
use crate::net::runtime::runtime;
use crate::net::server::ingest::{Drain, FlvOutput, Ingest, IngestEvent, OutBuffer};
use crate::net::server::{self, Endpoint, RouteGuard};

const DEFAULT_EOS_ON_UNPUBLISH: bool = false;
const DEFAULT_DRAIN_TIMEOUT: u32 = 10;

#[derive(Debug, Clone)]
struct Settings {
    listen: ListenSettings,
    eos_on_unpublish: bool,
    enhanced: Enhanced,
    drain_tc_url: Option<String>,
    drain_timeout: u32,
}

impl Settings {
    fn drain(&self) -> Option<Drain> {
        let tc_url = self.drain_tc_url.clone().filter(|u| !u.is_empty())?;
        Some(Drain {
            tc_url,
            timeout: std::time::Duration::from_secs(self.drain_timeout.into()),
        })
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: ListenSettings::default(),
            eos_on_unpublish: DEFAULT_EOS_ON_UNPUBLISH,
            enhanced: Enhanced::default(),
            drain_tc_url: None,
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        }
    }
}

#[derive(Default)]
enum State {
    #[default]
    Stopped,
    Started {
        route: RouteGuard,
        ingest: Arc<Ingest>,
    },
}

/// What `create()` works on; only the streaming thread locks it, so holding it across the
/// wait for the next message blocks nobody else.
#[derive(Default)]
struct Stream {
    rx: Option<mpsc::Receiver<IngestEvent>>,
    output: FlvOutput,
    /// EOS is due once the pending buffers are out (publisher left, eos-on-unpublish set).
    eos: bool,
    /// What of an Enhanced RTMP stream goes downstream (`enhanced`).
    gate: Gate,
    /// An event taken while gathering a batch that ends it (a publisher starting or
    /// stopping): handled before the next wait.
    held: Option<IngestEvent>,
}

/// Most buffers one `create()` hands downstream as a list.
const MAX_BATCH: usize = 64;

#[derive(Default)]
pub struct RtmpServerSrc {
    settings: Mutex<Settings>,
    state: Mutex<State>,
    stream: Mutex<Stream>,
    /// Cancelled by `unlock()`, replaced by `unlock_stop()`.
    flushing: Mutex<CancellationToken>,
    /// Bytes output since start; outside `stream`, which `create()` holds while it waits.
    bytes: AtomicU64,
    /// The caps last set, with their `streamheader` (see `negotiate`).
    caps: Mutex<Option<gst::Caps>>,
    /// Per-track counters of the current (or last) publisher's stream.
    tracks: Tracks,
}

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rtmpserversrc",
        gst::DebugColorFlags::empty(),
        Some("RTMP server source"),
    )
});

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl RtmpServerSrc {
    fn make_buffer(&self, out: OutBuffer) -> gst::Buffer {
        let mut buffer = gst::Buffer::from_slice(out.data);
        {
            let b = buffer.get_mut().expect("new buffer is writable");
            b.set_dts(out.dts.map(gst::ClockTime::from_mseconds));
            b.set_pts(out.pts.map(gst::ClockTime::from_mseconds));
            let mut flags = gst::BufferFlags::empty();
            if out.header {
                flags |= gst::BufferFlags::HEADER;
            }
            if out.delta {
                flags |= gst::BufferFlags::DELTA_UNIT;
            }
            if out.discont {
                flags |= gst::BufferFlags::DISCONT;
            }
            b.set_flags(flags);
        }
        buffer
    }

    fn caps_with_streamheader(headers: &[bytes::Bytes]) -> gst::Caps {
        let array = gst::Array::new(headers.iter().map(|h| {
            let mut b = gst::Buffer::from_slice(h.clone());
            b.get_mut()
                .expect("new buffer is writable")
                .set_flags(gst::BufferFlags::HEADER);
            b.to_send_value()
        }));
        gst::Caps::builder("video/x-flv")
            .field("streamheader", array)
            .build()
    }

    fn request_reconnect(&self, tc_url: String, description: String) -> bool {
        let State::Started { ingest, .. } = &*lock(&self.state) else {
            return false;
        };
        let tc_url = (!tc_url.is_empty()).then_some(tc_url);
        let asked = ingest.request_reconnect(tc_url.clone(), description);
        gst::info!(
            CAT,
            imp = self,
            "reconnect request to {tc_url:?}: {}",
            if asked {
                "sent"
            } else {
                "no publisher that takes one"
            }
        );
        asked
    }

    /// Why this element stops taking the stream, for its publisher (see `Ingest::set_failure`).
    fn tell_publisher(&self, why: String) {
        if let State::Started { ingest, .. } = &*lock(&self.state) {
            ingest.set_failure(why);
        }
    }

    fn stats(&self) -> gst::Structure {
        let (publisher, announced) = match &*lock(&self.state) {
            State::Started { ingest, .. } => (ingest.publisher(), ingest.announced()),
            State::Stopped => (None, None),
        };
        let bytes = self.bytes.load(Ordering::Relaxed);
        let clients = gst::Array::new(publisher.map(|p| {
            gst::Structure::builder("client")
                .field("address", p.to_string())
                .field("bytes", bytes)
                .field("drops", 0u64)
                .field("enhanced-codecs", announced_codecs(announced.as_deref()))
                .field("caps-ex", announced.as_ref().map_or(0, |c| c.caps_ex))
                .build()
                .to_send_value()
        }));
        let stats = gst::Structure::builder("application/x-rtmp-server-stats")
            .field("clients", u32::from(publisher.is_some()))
            .field("client-stats", clients)
            .build();
        self.tracks.add_to(stats)
    }
}

#[glib::object_subclass]
impl ObjectSubclass for RtmpServerSrc {
    const NAME: &'static str = "GstRsRtmpServerSrc";
    type Type = super::RtmpServerSrc;
    type ParentType = gst_base::PushSrc;
}

impl ObjectImpl for RtmpServerSrc {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPS: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let mut props = ListenSettings::properties();
            props.push(
                glib::ParamSpecBoolean::builder("eos-on-unpublish")
                    .nick("EOS on unpublish")
                    .blurb("End the stream when the publisher leaves, instead of waiting for the next one")
                    .default_value(DEFAULT_EOS_ON_UNPUBLISH)
                    .mutable_ready()
                    .build(),
            );
            props.push(enhanced::property());
            props.push(
                glib::ParamSpecString::builder("drain-tc-url")
                    .nick("Drain tcUrl")
                    .blurb("When the element stops, ask a publisher that announced Enhanced RTMP capsEx Reconnect to move here (rtmp://host:port/app, or /app on this server) and wait for it to leave, instead of failing its stream (unset: no drain)")
                    .mutable_ready()
                    .build(),
            );
            props.push(
                glib::ParamSpecUInt::builder("drain-timeout")
                    .nick("Drain timeout")
                    .blurb("Seconds a draining publisher has to move before it is told the stream failed")
                    .default_value(DEFAULT_DRAIN_TIMEOUT)
                    .maximum(3600)
                    .mutable_ready()
                    .build(),
            );
            props.push(
                glib::ParamSpecBoxed::builder::<gst::Structure>("stats")
                    .nick("Statistics")
                    .blurb("clients, and per client: address, bytes, drops, enhanced-codecs and caps-ex (what its connect announced); tracks: per track kind, id, codec (FourCC), enhanced, frames, keyframes, bytes (of the publisher's stream)")
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
            // request-reconnect(tc-url, description) -> asked: an Enhanced RTMP
            // ReconnectRequest to the publisher ("" = the same place), when it announced it
            // handles them.
            signals.push(serverprops::request_reconnect_signal(
                |e: &super::RtmpServerSrc, tc_url, description| {
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
            "eos-on-unpublish" => settings.eos_on_unpublish = value.get().expect("type checked"),
            "enhanced" => settings.enhanced = value.get().expect("type checked"),
            "drain-tc-url" => settings.drain_tc_url = value.get().expect("type checked"),
            "drain-timeout" => settings.drain_timeout = value.get().expect("type checked"),
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
            "eos-on-unpublish" => settings.eos_on_unpublish.to_value(),
            "enhanced" => settings.enhanced.to_value(),
            "drain-tc-url" => settings.drain_tc_url.to_value(),
            "drain-timeout" => settings.drain_timeout.to_value(),
            other => unimplemented!("property {other}"),
        }
    }

    fn constructed(&self) {
        self.parent_constructed();
        let obj = self.obj();
        obj.set_live(true);
        obj.set_format(gst::Format::Time);
    }
}

impl GstObjectImpl for RtmpServerSrc {}

impl ElementImpl for RtmpServerSrc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static META: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "RTMP server source",
                "Source/Network",
                "Accepts RTMP publishers and outputs their stream as FLV",
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

impl BaseSrcImpl for RtmpServerSrc {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = lock(&self.settings).clone();
        let addr = settings.listen.socket_addr()?;
        settings.listen.check()?;
        let drain = settings.drain();
        if let Some(d) = &drain
            && !(d.tc_url.starts_with('/') || d.tc_url.starts_with("rtmp"))
        {
            return Err(gst::error_msg!(
                gst::ResourceError::Settings,
                [
                    "drain-tc-url {:?} is neither an RTMP URL (rtmp://host:port/app) nor a path (/app)",
                    d.tc_url
                ]
            ));
        }
        let (ingest, rx) = Ingest::new();
        ingest.set_drain(drain);
        let hooks = Arc::new(ElementHooks {
            element: self.obj().downgrade(),
        });
        let config = settings
            .listen
            .route_config(Endpoint::Ingest(ingest.clone()), hooks);
        let route = server::add_route(addr, config)
            .map_err(|e| gst::error_msg!(gst::ResourceError::OpenRead, ["{e}"]))?;
        gst::info!(
            CAT,
            imp = self,
            "waiting for a publisher on rtmp://{}/{}/{}",
            route.local_addr(),
            settings.listen.application,
            settings.listen.stream
        );
        *lock(&self.stream) = Stream {
            rx: Some(rx),
            gate: Gate::new(settings.enhanced),
            ..Stream::default()
        };
        self.bytes.store(0, Ordering::Relaxed);
        self.tracks.clear();
        *lock(&self.state) = State::Started { route, ingest };
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        let state = std::mem::take(&mut *lock(&self.state));
        if let State::Started { route, ingest } = &state {
            // Nobody reads the publisher's messages any more: its connection must not wait
            // for room in the channel.
            lock(&self.stream).rx = None;
            // A publisher still publishing is told that the stream is over (NetStream.Failed,
            // with the reason when the element gave one) rather than cut off: FFmpeg then
            // reports the server's reason, not a broken pipe.
            if ingest.publisher().is_some() {
                route.end_connections();
            }
            // A publisher that just unpublished (what made an `eos-on-unpublish` pipeline
            // stop), or was just told, is still collecting the answers to its last commands —
            // over a tunnel at its next poll — and hangs up after: the port stays for it,
            // `linger` at most.
            // A draining publisher has the drain's timeout to move first.
            let drain = ingest.drain().map(|d| d.timeout).unwrap_or_default();
            let deadline = std::time::Instant::now() + drain + route.linger();
            while (ingest.publisher().is_some() || route.finishing() > 0)
                && std::time::Instant::now() < deadline
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
        // Dropping the route ends its connections; the listener closes with its last route.
        drop(state);
        *lock(&self.stream) = Stream::default();
        *lock(&self.caps) = None;
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
        lock(&self.flushing).cancel();
        Ok(())
    }

    fn unlock_stop(&self) -> Result<(), gst::ErrorMessage> {
        *lock(&self.flushing) = CancellationToken::new();
        Ok(())
    }
}

impl PushSrcImpl for RtmpServerSrc {
    fn create(&self, buffer: Option<&mut gst::BufferRef>) -> Result<CreateSuccess, gst::FlowError> {
        // A list only when the base class did not hand us a buffer to fill (it does not in
        // push mode, but a list would then be refused).
        let batch = if buffer.is_none() { MAX_BATCH } else { 1 };
        let eos_on_unpublish = lock(&self.settings).eos_on_unpublish;
        let flushing = lock(&self.flushing).clone();
        let mut stream = lock(&self.stream);
        loop {
            if let Some(headers) = stream.output.take_new_streamheader() {
                let caps = Self::caps_with_streamheader(&headers);
                gst::debug!(CAT, imp = self, "new caps {caps}");
                *lock(&self.caps) = Some(caps.clone());
                if self.obj().set_caps(&caps).is_err() {
                    gst::element_imp_error!(
                        self,
                        gst::CoreError::Negotiation,
                        ["downstream refused caps {caps}"]
                    );
                    return Err(gst::FlowError::NotNegotiated);
                }
            }
            if let Some(out) = stream.output.pop() {
                let first = self.make_buffer(out);
                return self.with_backlog(&mut stream, first, batch, eos_on_unpublish);
            }
            if stream.eos {
                gst::info!(CAT, imp = self, "publisher gone: end of stream");
                return Err(gst::FlowError::Eos);
            }
            if let Some(ev) = stream.held.take() {
                self.handle(&mut stream, ev, eos_on_unpublish)?;
                continue;
            }
            let Some(rx) = stream.rx.as_mut() else {
                return Err(gst::FlowError::Flushing);
            };
            let next = runtime().block_on(async {
                tokio::select! {
                    ev = rx.recv() => Some(ev),
                    _ = flushing.cancelled() => None,
                }
            });
            let ev = match next {
                None => return Err(gst::FlowError::Flushing),
                Some(None) => return Err(gst::FlowError::Flushing),
                Some(Some(ev)) => ev,
            };
            self.handle(&mut stream, ev, eos_on_unpublish)?;
        }
    }
}

impl RtmpServerSrc {
    /// `first`, and with it the buffers that are already there: queued output, and messages
    /// the publisher's connection has already passed on (a backlog, or a read that held
    /// several messages), taken without waiting. Several go down as one list, which
    /// rtmpserversink writes to each player in one send; a header (caps first), a publisher
    /// starting or stopping, or `max` buffers end the list.
    fn with_backlog(
        &self,
        stream: &mut Stream,
        first: gst::Buffer,
        max: usize,
        eos_on_unpublish: bool,
    ) -> Result<CreateSuccess, gst::FlowError> {
        let mut bytes = first.size();
        let mut list: Option<gst::BufferList> = None;
        let mut count = 1;
        while count < max {
            if let Some(out) = stream.output.pop_media() {
                let b = self.make_buffer(out);
                bytes += b.size();
                list.get_or_insert_with(|| {
                    let mut l = gst::BufferList::new_sized(MAX_BATCH);
                    l.get_mut().expect("new list").add(first.clone());
                    l
                })
                .get_mut()
                .expect("the list is ours")
                .add(b);
                count += 1;
                continue;
            }
            if !stream.output.is_empty() || stream.held.is_some() || stream.eos {
                break;
            }
            let Some(rx) = stream.rx.as_mut() else { break };
            match rx.try_recv() {
                Ok(ev @ IngestEvent::Message(_)) => self.handle(stream, ev, eos_on_unpublish)?,
                Ok(other) => stream.held = Some(other),
                Err(_) => break,
            }
        }
        self.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        Ok(match list {
            Some(list) => CreateSuccess::NewBufferList(list),
            None => CreateSuccess::NewBuffer(first),
        })
    }

    /// Takes one event of the publisher's connection into the output.
    fn handle(
        &self,
        stream: &mut Stream,
        mut ev: IngestEvent,
        eos_on_unpublish: bool,
    ) -> Result<(), gst::FlowError> {
        {
            let element = self.obj();
            let element = element.upcast_ref::<gst::Element>();
            if let IngestEvent::Message(msg) = &ev {
                self.tracks.observe(msg.type_id, &msg.payload);
            }
            match &mut ev {
                IngestEvent::Started { peer, name } => {
                    gst::info!(CAT, imp = self, "publisher {peer} started stream {name:?}");
                    self.tracks.clear();
                    let src = element.static_pad("src").expect("always pad");
                    stream.gate.begin(&src);
                }
                IngestEvent::Stopped { peer, reason } => {
                    gst::info!(CAT, imp = self, "publisher {peer} stopped: {reason}");
                    if eos_on_unpublish {
                        stream.eos = true;
                    }
                    stream.gate.finish(element)?;
                }
                IngestEvent::Message(msg) if stream.gate.filtering() => {
                    let pass = stream.gate.pass(
                        element,
                        msg.type_id,
                        u64::from(msg.timestamp),
                        &msg.payload,
                    );
                    match pass {
                        Ok(Pass::Keep) => {}
                        Ok(Pass::Replace(body)) => msg.payload = body,
                        Ok(Pass::Skip) => return Ok(()),
                        Err(e) => {
                            self.tell_publisher(stream.gate.nothing_left_text());
                            return Err(e);
                        }
                    }
                }
                IngestEvent::Message(_) => {}
            }
        }
        stream.output.handle(ev);
        Ok(())
    }
}
