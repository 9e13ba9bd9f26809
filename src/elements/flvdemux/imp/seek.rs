//! Seeking in files and the queries and events of the source pads.

use gst::prelude::*;
use gst::subclass::prelude::*;

use super::{CAT, RsFlvDemux};

pub(super) struct PendingSeek {
    pub(super) segment: gst::FormattedSegment<gst::ClockTime>,
    pub(super) seqnum: gst::Seqnum,
    pub(super) target_ms: u64,
    pub(super) offset: u64,
}

impl RsFlvDemux {
    /// A flushing TIME seek, done as a byte seek upstream from the index entry at or before
    /// the target; output then starts at the last sync point before the target.
    pub(super) fn seek(&self, event: &gst::event::Seek) -> bool {
        let (rate, flags, start_type, start, stop_type, stop) = event.get();
        let (gst::GenericFormattedValue::Time(start), gst::GenericFormattedValue::Time(stop)) =
            (start, stop)
        else {
            return false;
        };
        if rate <= 0.0 || !flags.contains(gst::SeekFlags::FLUSH) || start_type != gst::SeekType::Set
        {
            gst::debug!(
                CAT,
                imp = self,
                "only flushing forward seeks to a set time: {event:?}"
            );
            return false;
        }
        let mut q = gst::query::Seeking::new(gst::Format::Bytes);
        if !self.sinkpad.peer_query(&mut q) || !q.result().0 {
            gst::debug!(CAT, imp = self, "upstream cannot seek in bytes");
            return false;
        }
        let target = start.unwrap_or(gst::ClockTime::ZERO);
        let mut segment = gst::FormattedSegment::<gst::ClockTime>::new();
        if segment
            .do_seek(rate, flags, start_type, Some(target), stop_type, stop)
            .is_none()
        {
            return false;
        }
        let seqnum = event.seqnum();
        let target_ms = target.mseconds();
        let offset = {
            let st = self.state();
            let i = st.index.partition_point(|&(t, _)| t <= target_ms);
            if i == 0 { 0 } else { st.index[i - 1].1 }
        };
        self.state().pending_seek = Some(PendingSeek {
            segment,
            seqnum,
            target_ms,
            offset,
        });
        gst::debug!(
            CAT,
            imp = self,
            "seek to {target}: reading from byte {offset}"
        );
        let bytes = gst::event::Seek::builder(
            1.0,
            gst::SeekFlags::FLUSH,
            gst::SeekType::Set,
            gst::format::Bytes::from_u64(offset),
            gst::SeekType::None,
            gst::format::Bytes::NONE,
        )
        .seqnum(seqnum)
        .build();
        if self.sinkpad.push_event(bytes) {
            true
        } else {
            self.state().pending_seek = None;
            false
        }
    }

    pub(super) fn src_query(&self, pad: &gst::Pad, query: &mut gst::QueryRef) -> bool {
        if let gst::QueryViewMut::Seeking(q) = query.view_mut()
            && q.format() == gst::Format::Time
        {
            let mut bytes = gst::query::Seeking::new(gst::Format::Bytes);
            let seekable = self.sinkpad.peer_query(&mut bytes) && bytes.result().0;
            let duration = self.state().duration;
            q.set(seekable, gst::ClockTime::ZERO, duration);
            return true;
        }
        if let gst::QueryViewMut::Duration(q) = query.view_mut()
            && q.format() == gst::Format::Time
        {
            if self.sinkpad.peer_query(q.query_mut()) {
                return true;
            }
            if let Some(d) = self.state().duration {
                q.set(d);
                return true;
            }
            return false;
        }
        gst::Pad::query_default(pad, Some(&*self.obj()), query)
    }

    pub(super) fn src_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        match event.view() {
            // Push mode only: seeks go to upstream as they are (a TIME seek a source can
            // honour), never handled here.
            gst::EventView::Seek(s) => {
                {
                    // The same seek arrives once per sink (one per pad): do it once.
                    let mut st = self.state();
                    if st.last_seek == Some(event.seqnum()) {
                        return true;
                    }
                    st.last_seek = Some(event.seqnum());
                }
                // A source that seeks in time itself goes first; then a byte seek.
                self.sinkpad.push_event(event.clone()) || self.seek(s)
            }
            _ => gst::Pad::event_default(pad, Some(&*self.obj()), event),
        }
    }
}
