//! The ingest endpoint: how a publisher's connection hands its media to an rtmpserversrc.
//!
//! One [`Ingest`] per serversrc route. A connection that wants to publish first claims it
//! (a second publisher on a busy route is refused, never mixed in), then sends its messages
//! down a bounded channel; the channel's bound is the backpressure that stops reading the
//! publisher's socket while the element does not take buffers. The element owns the receiver.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use rsrtmp_engine::message::Message;
use tokio::sync::mpsc;

/// Messages in flight between a publisher's connection and the element.
pub const CHANNEL_CAPACITY: usize = 256;

/// What a publisher's connection tells the element.
#[derive(Debug)]
pub enum IngestEvent {
    /// A publisher was accepted on the route.
    Started {
        peer: SocketAddr,
        name: String,
    },
    /// One media or data message (audio 8, video 9, data 18/15), aggregates already split.
    Message(Message),
    /// The publisher went away (unpublished, disconnected, or failed).
    Stopped { peer: SocketAddr, reason: String },
}

/// The route's publisher slot.
pub struct Ingest {
    tx: mpsc::Sender<IngestEvent>,
    busy: Mutex<Option<SocketAddr>>,
}

impl Ingest {
    /// A slot and the receiver its element reads from.
    pub fn new() -> (Arc<Ingest>, mpsc::Receiver<IngestEvent>) {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        (
            Arc::new(Ingest {
                tx,
                busy: Mutex::new(None),
            }),
            rx,
        )
    }

    /// The current publisher, if any.
    pub fn publisher(&self) -> Option<SocketAddr> {
        *self.busy.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the slot for `peer`; `None` when another publisher holds it.
    pub(crate) fn claim(self: &Arc<Self>, peer: SocketAddr) -> Option<IngestClaim> {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        if busy.is_some() {
            return None;
        }
        *busy = Some(peer);
        Some(IngestClaim {
            ingest: self.clone(),
            peer,
            started: false,
        })
    }
}

/// A publisher's hold on the slot. Released on drop.
pub(crate) struct IngestClaim {
    ingest: Arc<Ingest>,
    peer: SocketAddr,
    started: bool,
}

impl IngestClaim {
    /// Sends an event; false when the element is gone.
    pub(crate) async fn send(&mut self, ev: IngestEvent) -> bool {
        if matches!(ev, IngestEvent::Started { .. }) {
            self.started = true;
        }
        self.ingest.tx.send(ev).await.is_ok()
    }

    /// Tells the element the publisher is gone (when it was told it came) and frees the slot.
    pub(crate) async fn finish(mut self, reason: String) {
        if self.started {
            self.started = false;
            let _ = self
                .ingest
                .tx
                .send(IngestEvent::Stopped {
                    peer: self.peer,
                    reason,
                })
                .await;
        }
    }
}

impl Drop for IngestClaim {
    fn drop(&mut self) {
        if self.started {
            // The connection task was cut short: the element must still learn of it, and
            // must not wait for it.
            let _ = self.ingest.tx.try_send(IngestEvent::Stopped {
                peer: self.peer,
                reason: "connection task ended".into(),
            });
        }
        *self.ingest.busy.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}
