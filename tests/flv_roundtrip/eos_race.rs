//! Regression: the round trip's pipeline must reach EOS however GstBin's own state messages
//! interleave.
//!
//! The hang seen once in about 10,000 cases was no element's: every pad and every appsink got
//! EOS and every streaming thread was idle, but the pipeline never posted EOS. Async appsinks
//! added to the PLAYING pipeline made it lose its state; GstBin got PLAYING back on its
//! state-continue thread, then posted a stale "PAUSED, pending PLAYING" state-changed message
//! of its own after the one for PLAYING, and that message cleared the flag GstBin checks
//! before posting EOS. A bus sync handler runs inside that post, so making it slow for those
//! messages widens the window: before the harness's sinks were made non-async, most rounds
//! here hung until the deadline.
//!
//! The case is the one a failing run printed: two Opus tracks, one with a new OpusHead and a
//! DTS jump of about 2^31 ms.

use super::*;

/// Rounds of the case; before the fix, each hung with a probability of about one half.
const ROUNDS: usize = 8;

fn opus_codec(channels: u8, family: u8) -> Codec {
    let mut head = b"OpusHead".to_vec();
    head.extend_from_slice(&[1, channels]);
    head.extend_from_slice(&312u16.to_le_bytes());
    head.extend_from_slice(&48000u32.to_le_bytes());
    head.extend_from_slice(&0i16.to_le_bytes());
    head.push(family);
    if family == 1 {
        // Stream count, coupled stream count, channel mapping.
        let streams = channels.div_ceil(2);
        head.extend_from_slice(&[streams, channels - streams]);
        head.extend(0..channels);
    }
    Codec::Opus {
        head,
        channels,
        family,
    }
}

fn audio_track(id: u8, codec: Codec, dts_ms: &[u64], change: Option<(usize, Codec)>) -> Track {
    let buffers = dts_ms
        .iter()
        .enumerate()
        .map(|(i, &dts_ms)| InBuffer {
            payload: PayloadSpec {
                size: 40 + 97 * i,
                seed: u64::from(id) << 8 | i as u64,
                temporal_delimiter: false,
            },
            dts_ms,
            dts_sub_ns: 1000 * i as u32 + 7,
            cts_ms: 0,
            keyframe: true,
            pts_only: false,
        })
        .collect();
    Track {
        video: false,
        id,
        codec,
        colorimetry: None,
        buffers,
        change,
    }
}

fn hang_case() -> Case {
    let jump = 2_116_560_133;
    Case {
        many_tracks: true,
        nanos: true,
        tracks: vec![
            audio_track(
                1,
                opus_codec(7, 1),
                &[2420, 2444, 2468, 2492, 2516, 2540, 2564],
                None,
            ),
            audio_track(
                2,
                opus_codec(2, 0),
                &[
                    2400,
                    2420,
                    2441,
                    2462,
                    2482,
                    jump,
                    jump + 20,
                    jump + 40,
                    jump + 60,
                    jump + 80,
                    jump + 100,
                ],
                Some((4, opus_codec(1, 0))),
            ),
        ],
    }
}

/// Makes the pipeline's own "PAUSED, pending PLAYING" state-changed messages slow to post:
/// the one of its start (harmless, nothing flows yet) and those of getting a lost state back.
fn slow_state_messages(pipeline: &gst::Pipeline) {
    pipeline.bus().expect("bus").set_sync_handler(|_, msg| {
        if let gst::MessageView::StateChanged(sc) = msg.view()
            && msg.src().is_some_and(|s| s.is::<gst::Pipeline>())
            && sc.current() == gst::State::Paused
            && sc.pending() == gst::State::Playing
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        gst::BusSyncReply::Pass
    });
}

#[test]
fn hang_case_reaches_eos_with_slow_state_messages() {
    let case = hang_case();
    for round in 0..ROUNDS {
        if let Err(e) = check(&case, slow_state_messages) {
            panic!("round {round} of {ROUNDS}: {e}");
        }
    }
}
