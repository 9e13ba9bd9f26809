//! Pacing raw FLV by the timestamps of its tags, for rtmpclientsink and rtmpserversink.
//!
//! Buffers read from a file (`filesrc`, `multifilesrc`) carry no timestamps, so BaseSink's
//! `sync` has nothing to wait for and a 10 s file would go out in a fraction of a second. The
//! tags inside have them: with `sync=true` each tag waits for its running time, as `ffmpeg -re`
//! does — the first tag goes at the running time it arrived, every later one as far after it as
//! its timestamp says (on the timeline joined across files, `flv::TimelineJoiner`).
//!
//! The wait is the one BaseSink makes before it renders a timestamped buffer
//! (`gst_base_sink_do_sync`): on the element's clock through the base class's clock id, against
//! its base time, latency and `ts-offset`. PLAYING→PAUSED, PAUSED→READY and a flush unschedule
//! that clock id right after calling the element's `unlock()`, so the wait ends at once; in
//! PAUSED the buffer prerolls (the state change completes) and the wait goes on for what is
//! left after PAUSED→PLAYING, running time having stood still meanwhile; a flush or READY ends
//! it with `Flushing`.
//!
//! Raw input is bytes in a segment that is not in TIME (`filesrc`, `multifilesrc`, `appsrc
//! format=bytes`; BaseSrc stamps the first buffer of a file with DTS 0, which says nothing about
//! timing), or buffers without timestamps in a TIME segment. Timestamped input (flvmux) is
//! BaseSink's to sync before `render()`, and is never paced here: the first buffer with a
//! timestamp in a TIME segment makes the whole stream timestamped (flvmux sends its header and
//! metadata untimestamped, ahead of the timestamped tags).

use gst::glib::translate::FromGlib;
use gst_base::prelude::*;

/// How the tags of one buffer are timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// From a muxer: BaseSink syncs the buffers, the tags keep their timestamps.
    Timestamped,
    /// FLV bytes from files: the tags continue one timeline across files and are paced by it
    /// when the sink syncs.
    Raw,
}

/// Which input a stream has, and where its paced timeline sits in running time.
#[derive(Debug, Default)]
pub struct Pacer {
    /// The segment is in TIME: buffer timestamps mean running time.
    time_segment: bool,
    /// A buffer with a timestamp came in a TIME segment of this stream.
    timestamped: bool,
    /// Running time and timeline position (ms) of the tag that anchored the pacing.
    anchor: Option<(gst::ClockTime, u64)>,
}

impl Pacer {
    pub fn new() -> Pacer {
        Pacer::default()
    }

    /// A segment in `format` starts.
    pub fn segment(&mut self, format: gst::Format) {
        self.time_segment = format == gst::Format::Time;
    }

    /// What `buffer` is. From the first buffer with a timestamp in a TIME segment on, the
    /// stream is timestamped.
    pub fn input(&mut self, buffer: &gst::BufferRef) -> Input {
        if self.time_segment && (buffer.pts().is_some() || buffer.dts().is_some()) {
            self.timestamped = true;
        }
        if self.timestamped {
            Input::Timestamped
        } else {
            Input::Raw
        }
    }

    /// The running time the tag at timeline position `time` (ms) is due, `now` being the
    /// running time when it arrived. The first tag after [`Pacer::new`] or
    /// [`Pacer::reanchor`] is due at once and anchors the ones after it; a tag before the
    /// anchor is due at the anchor.
    pub fn due(&mut self, time: u64, now: gst::ClockTime) -> gst::ClockTime {
        let (at, origin) = *self.anchor.get_or_insert((now, time));
        at.saturating_add(gst::ClockTime::from_mseconds(time.saturating_sub(origin)))
    }

    /// Forgets the anchor, after a flush (running time starts again): the next tag goes out at
    /// once and the ones after it are paced from there.
    pub fn reanchor(&mut self) {
        self.anchor = None;
    }

    /// Forgets everything (a new stream).
    pub fn reset(&mut self) {
        *self = Pacer::default();
    }
}

/// Running time of `sink` now, when pacing applies: the sink syncs and has a clock.
pub fn pacing_now(sink: &gst_base::BaseSink) -> Option<gst::ClockTime> {
    if !sink.is_sync() {
        return None;
    }
    sink.current_running_time()
}

/// Waits in `render()` of `buffer` for running time `due` (see the module). `Err(Flushing)`
/// when a flush or a state change to READY ended the wait; a state change to PAUSED prerolls
/// `buffer` and waits for PLAYING again.
pub fn wait(
    sink: &gst_base::BaseSink,
    buffer: &gst::BufferRef,
    due: gst::ClockTime,
) -> Result<(), gst::FlowError> {
    let at = clock_time(sink, due);
    loop {
        preroll(sink, buffer)?;
        match sink.wait_clock(at).0 {
            // PAUSED or stopping: the preroll tells which.
            Err(gst::ClockError::Unscheduled) => {}
            // Reached, late, or nothing to wait on (no clock, sync off).
            _ => return Ok(()),
        }
    }
}

/// `due` as BaseSink adjusts a running time before it waits (`gst_base_sink_adjust_time`):
/// plus latency and `ts-offset`, minus the render delay the latency includes.
fn clock_time(sink: &gst_base::BaseSink, due: gst::ClockTime) -> gst::ClockTime {
    let t = due.saturating_add(sink.latency());
    let offset = sink.ts_offset();
    let t = if offset < 0 {
        t.saturating_sub(gst::ClockTime::from_nseconds(offset.unsigned_abs()))
    } else {
        t.saturating_add(gst::ClockTime::from_nseconds(offset as u64))
    };
    t.saturating_sub(sink.render_delay())
}

/// BaseSink's preroll step between two waits, as in `gst_base_sink_do_sync`: flushing ends
/// the render; in PAUSED `buffer` prerolls, the state change completes, and this blocks until
/// PLAYING (or a flush, or READY); in PLAYING it returns at once.
fn preroll(sink: &gst_base::BaseSink, buffer: &gst::BufferRef) -> Result<(), gst::FlowError> {
    let raw = sink.as_ptr();
    // SAFETY: called from `render()`, where BaseSink holds its preroll lock, under which it
    // writes `flushing` and which `gst_base_sink_do_preroll` requires; `buffer` is the buffer
    // being rendered (gstreamer-rs does not bind `do_preroll`).
    unsafe {
        if (*raw).flushing != 0 {
            return Err(gst::FlowError::Flushing);
        }
        let ret = gst_base::ffi::gst_base_sink_do_preroll(
            raw,
            buffer.as_ptr() as *mut gst::ffi::GstMiniObject,
        );
        gst::FlowReturn::from_glib(ret).into_result().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(ms: u64) -> gst::ClockTime {
        gst::ClockTime::from_mseconds(ms)
    }

    #[test]
    fn the_first_tag_anchors_the_rest() {
        let mut pacer = Pacer::new();
        // The first tag (at 500 ms on its timeline) arrives at running time 2 s: due then.
        assert_eq!(pacer.due(500, ms(2000)), ms(2000));
        // Later tags are due their distance after it, whenever they arrive.
        assert_eq!(pacer.due(1500, ms(2001)), ms(3000));
        assert_eq!(pacer.due(6500, ms(2100)), ms(8000));
        // Interleaved slightly before the anchor: due at once.
        assert_eq!(pacer.due(480, ms(2200)), ms(2000));
        // After a flush the next tag anchors again.
        pacer.reanchor();
        assert_eq!(pacer.due(7000, ms(100)), ms(100));
        assert_eq!(pacer.due(7040, ms(100)), ms(140));
    }

    #[test]
    fn one_timestamped_buffer_in_time_makes_the_stream_timestamped() {
        gst::init().unwrap();
        let raw = gst::Buffer::from_slice(b"FLV");
        let mut stamped = gst::Buffer::from_slice(b"tag");
        stamped.get_mut().unwrap().set_dts(ms(0));
        // filesrc: bytes, the first buffer stamped DTS 0 by BaseSrc.
        let mut pacer = Pacer::new();
        pacer.segment(gst::Format::Bytes);
        assert_eq!(pacer.input(&stamped), Input::Raw);
        assert_eq!(pacer.input(&raw), Input::Raw);
        // flvmux: time, its header untimestamped, then timestamped tags.
        pacer.reset();
        pacer.segment(gst::Format::Time);
        assert_eq!(pacer.input(&raw), Input::Raw);
        assert_eq!(pacer.input(&stamped), Input::Timestamped);
        // Its later metadata has no timestamp, and is still the muxer's.
        assert_eq!(pacer.input(&raw), Input::Timestamped);
        pacer.reset();
        assert_eq!(pacer.input(&raw), Input::Raw);
    }
}
