//! What the streaming thread does once the state lock is released: pads, events, buffers.

use gst::prelude::*;
use gst::subclass::prelude::*;

use super::{CAT, RsFlvDemux, State, TrackKey};

/// What the streaming thread does once the state lock is released.
pub(super) enum Action {
    AddPad(gst::Pad),
    Event(gst::Pad, gst::Event),
    Buffer(gst::Pad, gst::Buffer),
    NoMorePads,
    Warning(String),
}

impl RsFlvDemux {
    /// Carries out the actions in order; returns the combined flow of the buffers pushed.
    pub(super) fn run(&self, actions: Vec<Action>) -> Result<gst::FlowSuccess, gst::FlowError> {
        let mut flow = Ok(gst::FlowSuccess::Ok);
        for action in actions {
            match action {
                Action::AddPad(pad) => {
                    pad.set_active(true).ok();
                    // Sticky events stored before the pad is exposed, so linking sees caps.
                    if let Err(err) = self.obj().add_pad(&pad) {
                        gst::error!(CAT, imp = self, "adding pad {}: {}", pad.name(), err);
                        continue;
                    }
                    self.flow
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .add_pad(&pad);
                }
                Action::Event(pad, event) => {
                    if !pad.is_active() {
                        pad.set_active(true).ok();
                    }
                    if pad.parent().is_some() {
                        pad.push_event(event);
                    } else {
                        // Not exposed yet: store the sticky event for when it is.
                        let _ = pad.store_sticky_event(&event);
                    }
                }
                Action::Buffer(pad, buffer) => {
                    let res = pad.push(buffer);
                    flow = self
                        .flow
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .update_pad_flow(&pad, res);
                }
                Action::NoMorePads => self.obj().no_more_pads(),
                Action::Warning(msg) => {
                    gst::element_imp_warning!(self, gst::StreamError::Demux, ("{}", msg));
                }
            }
        }
        flow
    }

    /// A buffer goes out on its pad, after the segment if the pad needs it.
    pub(super) fn out(
        st: &mut State,
        key: TrackKey,
        pad: gst::Pad,
        mut buffer: gst::Buffer,
        actions: &mut Vec<Action>,
    ) {
        let Some(track) = st.tracks.get_mut(&key) else {
            return;
        };
        if std::mem::take(&mut track.need_segment) {
            let mut event = gst::event::Segment::builder(&st.segment);
            if let Some(seqnum) = st.seqnum {
                event = event.seqnum(seqnum);
            }
            actions.push(Action::Event(pad.clone(), event.build()));
        }
        if std::mem::take(&mut track.discont) {
            let flags = buffer.flags() | gst::BufferFlags::DISCONT;
            buffer.make_mut().set_flags(flags);
        }
        actions.push(Action::Buffer(pad, buffer));
    }
}
