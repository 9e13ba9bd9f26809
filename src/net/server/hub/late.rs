//! How late the stream itself reaches the hub: the input side of `queue-time`.
//!
//! A player's age bound (see `PlayerQueue::push_media`) only sees what waits in that player's
//! queue. When the server cannot keep up as a whole (its core is full, or something upstream in
//! the pipeline is slower than real time), every player's queue stays short while the backlog
//! grows before the hub — in the publisher's socket, the ingest channel, a queue element — and
//! every player's latency grows alike. This measures that backlog from the message timestamps:
//! a message's *offset* is its arrival instant minus its stream time; the least offset seen of
//! its kind (audio and video apart, so that a publisher's steady A/V interleave is not taken
//! for lateness) is the stream on time, and how far a message's offset lies above it is how
//! late it arrives.
//!
//! A backlog grows message by message, each arriving a little later than the one before (by
//! the time the one before took). An offset [`GAP`] or more above the previous message's is
//! not that when the hub was idle for it: nothing came for a while (a publisher that paused, a
//! new publisher continuing the timeline) and what comes now is fresh, so the least offset
//! moves up by the jump. The part of a jump the hub spent delivering (see [`Lateness::busy`])
//! is no pause: on an overloaded core one delivery to a thousand players can take seconds, and
//! the message after it is that much later, not fresh. The least
//! offset also creeps up by [`DRIFT_PER_SECOND`], so that a publisher whose clock runs slower
//! than ours is not slowly taken for late; a true backlog grows by far more per second than
//! that. A timestamp that goes back by more than [`BACKWARDS`] starts the measure again (a
//! new stream on the same timeline), as does the end of a stream; one that does not advance
//! (messages of one instant, a publisher whose timestamps stand still) is never late.

use std::time::{Duration, Instant};

/// How much a publisher's clock may run slower than ours without being taken for late:
/// 2 ms per second (2000 ppm), ten times what a poor crystal drifts.
pub(super) const DRIFT_PER_SECOND: Duration = Duration::from_millis(2);
/// A timestamp this far behind the last one of its kind starts the measure again.
pub(super) const BACKWARDS: Duration = Duration::from_secs(1);
/// An offset this much above the previous message's is a pause in the input, not a backlog.
pub(super) const GAP: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
struct Least {
    /// Arrival minus stream time, in µs since `Lateness::epoch` (may be negative).
    offset_us: i128,
    /// When it was last lowered or crept up.
    at: Instant,
    /// The previous message's offset.
    last_offset_us: i128,
    /// The latest stream time of this kind, ms.
    last_ms: u64,
}

/// The input lateness of one stream; audio and video measured apart.
#[derive(Debug)]
pub(super) struct Lateness {
    epoch: Instant,
    kinds: [Option<Least>; 2],
    /// Time the hub spent delivering since the last advancing message of each kind, µs.
    busy_us: [i128; 2],
}

impl Default for Lateness {
    fn default() -> Self {
        Lateness::new(Instant::now())
    }
}

impl Lateness {
    pub(super) fn new(epoch: Instant) -> Lateness {
        Lateness {
            epoch,
            kinds: [None, None],
            busy_us: [0, 0],
        }
    }

    /// Forgets the stream: the next message is on time by definition.
    pub(super) fn reset(&mut self) {
        self.kinds = [None, None];
        self.busy_us = [0, 0];
    }

    /// Notes that the hub spent `d` delivering: a jump in the offsets that the next messages
    /// show is lateness for that long, not a pause.
    pub(super) fn busy(&mut self, d: Duration) {
        for b in &mut self.busy_us {
            *b += d.as_micros() as i128;
        }
    }

    /// Notes a message of `kind` (0 audio, 1 video) with stream time `time_ms` arriving at
    /// `now`; returns how late it is.
    pub(super) fn observe(&mut self, kind: usize, time_ms: u64, now: Instant) -> Duration {
        let arrival_us = now.saturating_duration_since(self.epoch).as_micros() as i128;
        let offset_us = arrival_us - i128::from(time_ms) * 1000;
        let slot = &mut self.kinds[kind];
        let back = BACKWARDS.as_millis() as u64;
        // A timestamp far behind the last one starts the measure again.
        let Some(least) = slot.as_mut().filter(|l| time_ms + back >= l.last_ms) else {
            self.busy_us[kind] = 0;
            *slot = Some(Least {
                offset_us,
                at: now,
                last_offset_us: offset_us,
                last_ms: time_ms,
            });
            return Duration::ZERO;
        };
        if time_ms <= least.last_ms {
            // A timestamp that did not advance (several messages of one instant, or a
            // publisher whose timestamps stand still) says nothing about pace.
            return Duration::ZERO;
        }
        least.last_ms = time_ms;
        // What of the jump the hub did not spend delivering: the input's own pause.
        let jump = offset_us - std::mem::replace(&mut least.last_offset_us, offset_us);
        let idle = jump - std::mem::take(&mut self.busy_us[kind]);
        if idle >= GAP.as_micros() as i128 {
            least.offset_us += idle;
        }
        let elapsed = now.saturating_duration_since(least.at);
        // DRIFT_PER_SECOND per second of wall time, in µs: elapsed_µs * 2 / 1000.
        let creep = elapsed.as_micros() as i128 * DRIFT_PER_SECOND.as_micros() as i128 / 1_000_000;
        if creep > 0 {
            least.offset_us = (least.offset_us + creep).min(offset_us);
            least.at = now;
        }
        if offset_us < least.offset_us {
            least.offset_us = offset_us;
            least.at = now;
        }
        Duration::from_micros((offset_us - least.offset_us) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const AUDIO: usize = 0;
    const VIDEO: usize = 1;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_stream_in_real_time_is_never_late() {
        let t0 = Instant::now();
        let mut l = Lateness::new(t0);
        for i in 0..1000u64 {
            // Arrival jitter of up to 30 ms around the stream's own time.
            let jitter = (i * 7919) % 31;
            let late = l.observe(VIDEO, 1000 + i * 33, t0 + ms(i * 33 + jitter));
            assert!(late <= ms(30), "frame {i}: {late:?}");
        }
    }

    #[test]
    fn a_backlog_shows_as_growing_lateness_and_ends_when_caught_up() {
        let t0 = Instant::now();
        let mut l = Lateness::new(t0);
        for i in 0..30u64 {
            assert_eq!(l.observe(VIDEO, i * 33, t0 + ms(i * 33)), Duration::ZERO);
        }
        // From frame 30 on each frame comes 20 ms later than the last (a full core).
        let mut late = Duration::ZERO;
        for k in 1..=50u64 {
            let i = 30 + k;
            late = l.observe(VIDEO, i * 33, t0 + ms(i * 33 + k * 20));
        }
        assert!(late >= ms(990) && late <= ms(1000), "{late:?}");
        // The backlog is skipped: the next frame comes on time again.
        assert!(l.observe(VIDEO, 81 * 33, t0 + ms(81 * 33 + 5)) <= ms(5));
    }

    #[test]
    fn audio_and_video_are_measured_apart() {
        let t0 = Instant::now();
        let mut l = Lateness::new(t0);
        // The publisher sends its audio 400 ms ahead of the video of the same instant.
        for i in 0..100u64 {
            let now = t0 + ms(i * 20);
            assert_eq!(l.observe(VIDEO, i * 20, now), Duration::ZERO);
            assert_eq!(l.observe(AUDIO, i * 20 + 400, now), Duration::ZERO);
        }
    }

    #[test]
    fn a_slow_publisher_clock_is_not_taken_for_lateness() {
        let t0 = Instant::now();
        let mut l = Lateness::new(t0);
        // Its clock loses 1 ms per second (1000 ppm) over an hour: 3.6 s in all.
        let mut worst = Duration::ZERO;
        for s in 0..3600u64 {
            let late = l.observe(VIDEO, s * 999, t0 + ms(s * 1000));
            worst = worst.max(late);
        }
        assert!(worst <= ms(2), "{worst:?}");
    }

    #[test]
    fn a_pause_in_the_input_is_not_lateness() {
        let t0 = Instant::now();
        let mut l = Lateness::new(t0);
        for i in 0..100u64 {
            l.observe(VIDEO, i * 40, t0 + ms(i * 40));
        }
        // Nothing for 10 s, then the stream goes on where it stopped (a new publisher on the
        // same timeline), in real time.
        for i in 100..200u64 {
            assert_eq!(
                l.observe(VIDEO, i * 40, t0 + ms(10_000 + i * 40)),
                Duration::ZERO
            );
        }
        // A backlog after it still shows.
        let late = l.observe(VIDEO, 200 * 40, t0 + ms(10_000 + 200 * 40 + 600));
        assert!(late >= ms(590), "{late:?}");
    }

    #[test]
    fn a_jump_the_hub_spent_delivering_is_lateness_not_a_pause() {
        let t0 = Instant::now();
        let mut l = Lateness::new(t0);
        for i in 0..50u64 {
            l.observe(VIDEO, i * 40, t0 + ms(i * 40));
            l.observe(AUDIO, i * 40 + 10, t0 + ms(i * 40 + 10));
        }
        // Frame 49 took 1.5 s to deliver: the next of each kind comes that much later. (The
        // least offset creeps up by 2 ms per second meanwhile, hence the ranges.)
        let about = |late: Duration, expected: u64| {
            assert!(
                late <= ms(expected) && late + ms(30) >= ms(expected),
                "{late:?}, expected about {expected} ms"
            )
        };
        l.busy(ms(1500));
        about(l.observe(VIDEO, 50 * 40, t0 + ms(50 * 40 + 1500)), 1500);
        about(
            l.observe(AUDIO, 50 * 40 + 10, t0 + ms(50 * 40 + 10 + 1500)),
            1500,
        );
        // Part busy, part idle: only the idle part (here 3 s, over GAP) is a pause.
        l.busy(ms(400));
        about(
            l.observe(VIDEO, 51 * 40, t0 + ms(51 * 40 + 1900 + 3000)),
            1900,
        );
        // A pause with the hub idle is still a pause: the 5 s move the least offset.
        about(
            l.observe(VIDEO, 52 * 40, t0 + ms(52 * 40 + 1900 + 8000)),
            1900,
        );
    }

    #[test]
    fn timestamps_that_stand_still_are_never_late() {
        let t0 = Instant::now();
        let mut l = Lateness::new(t0);
        for i in 0..100u64 {
            assert_eq!(l.observe(AUDIO, 0, t0 + ms(i * 20)), Duration::ZERO);
        }
    }

    #[test]
    fn a_timeline_that_starts_again_starts_the_measure_again() {
        let t0 = Instant::now();
        let mut l = Lateness::new(t0);
        for i in 0..100u64 {
            l.observe(VIDEO, 50_000 + i * 40, t0 + ms(i * 40));
        }
        // Back to 0 (a new stream): without the reset it would be 50 s late.
        assert_eq!(l.observe(VIDEO, 0, t0 + ms(4000)), Duration::ZERO);
        assert_eq!(l.observe(VIDEO, 40, t0 + ms(4040)), Duration::ZERO);
        l.reset();
        assert_eq!(l.observe(VIDEO, 90_000, t0 + ms(4080)), Duration::ZERO);
    }
}
