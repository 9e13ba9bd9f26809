//! Events arriving on the sink pad: caps (streamheader), EOS, flushes.

use gst::prelude::*;
use gst::subclass::prelude::*;

use super::{Action, CAT, RsFlvDemux};
use crate::rtmp::flv::FlvParser;

impl RsFlvDemux {
    pub(super) fn sink_event(&self, pad: &gst::Pad, event: gst::Event) -> bool {
        match event.view() {
            gst::EventView::Caps(c) => {
                let mut st = self.state();
                st.streamheader = c
                    .caps()
                    .structure(0)
                    .and_then(|s| s.get::<gst::ArrayRef>("streamheader").ok())
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.get::<gst::Buffer>().ok())
                            .collect()
                    })
                    .unwrap_or_default();
                true
            }
            gst::EventView::StreamStart(s) => {
                self.state().upstream_stream_id = Some(s.stream_id().to_string());
                true
            }
            gst::EventView::Segment(_) => true,
            gst::EventView::Eos(_) => {
                let (empty, finish_error, more) = {
                    let mut st = self.state();
                    let empty = st.tracks.values().all(|t| t.pad.is_none());
                    let finish_error = st.parser.finish().err();
                    let more = !std::mem::replace(&mut st.no_more_pads, true);
                    (empty, finish_error, more)
                };
                if let Some(err) = finish_error {
                    gst::warning!(CAT, imp = self, "stream ends early: {}", err);
                }
                if empty {
                    gst::element_imp_error!(
                        self,
                        gst::StreamError::Demux,
                        ("The FLV stream ended without any track this element can output")
                    );
                    return false;
                }
                if more {
                    self.obj().no_more_pads();
                }
                // A pad that got nothing since a seek still gets its segment before EOS.
                let mut actions = Vec::new();
                {
                    let mut st = self.state();
                    st.held.clear();
                    let (segment, seqnum) = (st.segment.clone(), st.seqnum);
                    for t in st.tracks.values_mut() {
                        if let Some(pad) = &t.pad
                            && std::mem::take(&mut t.need_segment)
                        {
                            let mut e = gst::event::Segment::builder(&segment);
                            if let Some(seqnum) = seqnum {
                                e = e.seqnum(seqnum);
                            }
                            actions.push(Action::Event(pad.clone(), e.build()));
                        }
                    }
                }
                let _ = self.run(actions);
                for p in self.src_pads() {
                    p.push_event(event.clone());
                }
                true
            }
            gst::EventView::FlushStop(_) => {
                {
                    let mut st = self.state();
                    st.parser = FlvParser::new();
                    st.extender.reset();
                    st.held.clear();
                    if let Some(seek) = st.pending_seek.take() {
                        // The file's own timestamps from the seek offset on.
                        st.pushed = seek.offset;
                        st.restart = false;
                        st.offset = 0;
                        st.last_out = None;
                        st.segment = seek.segment;
                        st.seqnum = Some(seek.seqnum);
                        st.skip_until = Some(seek.target_ms);
                        for t in st.tracks.values_mut() {
                            t.need_segment = true;
                        }
                    } else {
                        st.restart = st.last_out.is_some();
                    }
                    for t in st.tracks.values_mut() {
                        t.discont = true;
                    }
                }
                self.flow.lock().unwrap_or_else(|e| e.into_inner()).reset();
                for p in self.src_pads() {
                    p.push_event(event.clone());
                }
                true
            }
            _ => gst::Pad::event_default(pad, Some(&*self.obj()), event),
        }
    }
}
