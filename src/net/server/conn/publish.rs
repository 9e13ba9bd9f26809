//! The publishing side of a connection: taking a publishing point, and letting the publisher
//! go when its element stops.

use super::*;

impl Conn {
    pub(super) async fn on_publish(&mut self, stream_id: u32, full_name: String) {
        let (name, query) = split_query(&full_name);
        let refuse = |this: &mut Conn, why: String| {
            gst::info!(
                CAT,
                "{}: refusing publish of {full_name:?}: {why}",
                this.peer
            );
            let _ = this.session.reject_publish(stream_id, &why);
        };
        if !matches!(self.role, Role::None) {
            return refuse(self, "this connection already publishes or plays".into());
        }
        let route = match self.slot.shared.lookup(&self.app, name, true) {
            Ok(r) => r,
            Err(_) => {
                return refuse(self, format!("no publishing point {}/{name}", self.app));
            }
        };
        if let Some(why) = self.transport_refused(&route) {
            refuse(self, why.clone());
            self.closing = Some(why);
            return;
        }
        let Endpoint::Ingest(ingest) = &route.endpoint else {
            return refuse(self, "route takes players, not publishers".into());
        };
        let Some(mut claim) = ingest.claim(self.peer) else {
            return refuse(self, format!("stream {name:?} is already being published"));
        };
        if !self.authorize(&route, name, query, true).await {
            return refuse(self, "not authorized".into());
        }
        if self.session.accept_publish(stream_id).is_err() {
            return;
        }
        gst::info!(
            CAT,
            "{}: publishing {}/{name} over {}",
            self.peer,
            self.app,
            self.transport.name()
        );
        self.slot.mark_routed();
        self.routed_at = Some(Instant::now());
        let peer = self.peer;
        Self::run_hook(&route, move |h| h.client_connected(peer)).await;
        claim.set_announced(self.session.client_caps().cloned());
        claim
            .send(IngestEvent::Started {
                peer,
                name: name.to_string(),
            })
            .await;
        self.role = Role::Publisher {
            stream_id,
            claim,
            route,
        };
    }

    /// The element this publisher fed stopped: tells the publisher with `NetStream.Failed`
    /// (and the element's reason, when it gave one) instead of cutting the connection, so that
    /// it stops sending and reports why. True when the publisher was told.
    pub(super) async fn fail_publisher(&mut self, stream: &mut Box<dyn ByteStream>) -> bool {
        if !self.element_gone {
            return false;
        }
        if self.drain_publisher(stream).await {
            // It left by itself: let it finish hanging up.
            self.stopped_by_client = true;
            return false;
        }
        let Role::Publisher {
            stream_id, route, ..
        } = &self.role
        else {
            return false;
        };
        let why = match &route.endpoint {
            Endpoint::Ingest(ingest) => ingest.failure(),
            _ => None,
        }
        .unwrap_or_else(|| "the server's pipeline stopped taking this stream".into());
        if self.session.fail_publish(*stream_id, &why).is_err() {
            return false;
        }
        gst::info!(CAT, "{}: publish failed: {why}", self.peer);
        self.drain_transmit();
        let _ = tokio::time::timeout(LINGER, write_all_vectored(stream, &mut self.outq)).await;
        true
    }

    /// The element stopped and drains ([`Drain`]): asks a publisher that announced capsEx
    /// Reconnect to move, then keeps its connection — reading, answering, discarding media —
    /// until it unpublishes or hangs up, the drain's timeout at most. True when it left.
    async fn drain_publisher(&mut self, stream: &mut Box<dyn ByteStream>) -> bool {
        use rsrtmp_engine::session::caps::CAPS_RECONNECT;
        let Role::Publisher { route, .. } = &self.role else {
            return false;
        };
        let Endpoint::Ingest(ingest) = &route.endpoint else {
            return false;
        };
        let Some(drain) = ingest.drain() else {
            return false;
        };
        if !self
            .session
            .client_caps()
            .is_some_and(|c| c.has(CAPS_RECONNECT))
        {
            return false;
        }
        let description = "this server stops: the stream continues at the new tcUrl";
        if self
            .session
            .request_reconnect(Some(&drain.tc_url), description)
            .is_err()
        {
            return false;
        }
        gst::info!(
            CAT,
            "{}: draining: asked the publisher to move to {:?}, waiting up to {:?}",
            self.peer,
            drain.tc_url,
            drain.timeout
        );
        let mut buf = vec![0u8; READ_BUF];
        let left = tokio::time::timeout(drain.timeout, async {
            loop {
                self.drain_transmit();
                if write_all_vectored(stream, &mut self.outq).await.is_err() {
                    return true;
                }
                while let Some(ev) = self.session.poll_event() {
                    if matches!(
                        ev,
                        ServerEvent::Unpublished { .. }
                            | ServerEvent::StreamDeleted { .. }
                            | ServerEvent::Closed(_)
                    ) {
                        return true;
                    }
                }
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return true,
                    Ok(n) => {
                        let now = self.now_ms();
                        self.session.handle_input(&buf[..n], now);
                    }
                }
            }
        })
        .await
        .unwrap_or(false);
        gst::info!(
            CAT,
            "{}: draining: {}",
            self.peer,
            if left {
                "the publisher left"
            } else {
                "the publisher did not leave in time"
            }
        );
        left
    }
}
