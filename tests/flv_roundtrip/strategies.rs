//! The strategies: what a case draws (codecs and their records, payloads, timestamps, tracks).

use super::*;

fn bytes(len: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), len)
}

fn avcc() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(vec![66u8, 77, 100, 110, 122, 244]),
        any::<u8>(),
        10u8..=52,
        bytes(4..=40),
        bytes(1..=12),
    )
        .prop_map(|(profile, compat, level, sps, pps)| {
            let mut v = vec![1, profile, compat, level, 0xff, 0xe1];
            v.extend_from_slice(&(sps.len() as u16 + 4).to_be_bytes());
            v.extend_from_slice(&[0x67, profile, compat, level]);
            v.extend_from_slice(&sps);
            v.push(1);
            v.extend_from_slice(&(pps.len() as u16 + 1).to_be_bytes());
            v.push(0x68);
            v.extend_from_slice(&pps);
            v
        })
}

fn hvcc() -> impl Strategy<Value = Vec<u8>> {
    (bytes(21..=21), bytes(0..=60)).prop_map(|(fixed, nals)| {
        let mut v = vec![1];
        v.extend_from_slice(&fixed);
        if nals.is_empty() {
            v.push(0);
        } else {
            // One array (a VPS) with one NAL unit.
            v.extend_from_slice(&[1, 0x20, 0, 1]);
            v.extend_from_slice(&(nals.len() as u16).to_be_bytes());
            v.extend_from_slice(&nals);
        }
        v
    })
}

fn av1c() -> impl Strategy<Value = [u8; 4]> {
    (
        0u8..=2,
        0u8..=31,
        any::<bool>(),
        0u8..=2,
        0u8..=3,
        any::<u8>(),
    )
        .prop_map(|(profile, level, tier, depth, chroma, delay)| {
            let (high, twelve) = match depth {
                0 => (false, false),
                1 => (true, false),
                _ => (true, true),
            };
            // 4:2:0, 4:2:2, 4:4:4, monochrome.
            let (mono, sx, sy) = [(0, 1, 1), (0, 1, 0), (0, 0, 0), (1, 1, 1)][chroma as usize];
            [
                0x81,
                profile << 5 | level,
                u8::from(tier) << 7
                    | u8::from(high) << 6
                    | u8::from(twelve) << 5
                    | mono << 4
                    | sx << 3
                    | sy << 2,
                delay & 0x1f,
            ]
        })
}

fn vp9() -> impl Strategy<Value = Codec> {
    (0u8..=3, any::<bool>(), any::<bool>()).prop_map(|(profile, deep, c444)| {
        let bit_depth = match (profile >= 2, deep) {
            (false, _) => 8,
            (true, false) => 10,
            (true, true) => 12,
        };
        let chroma = match (profile % 2 == 1, c444) {
            (false, _) => "4:2:0",
            (true, false) => "4:2:2",
            (true, true) => "4:4:4",
        };
        Codec::Vp9 {
            profile,
            bit_depth,
            chroma,
        }
    })
}

fn aac() -> impl Strategy<Value = Codec> {
    (1u8..=4, 0u8..=11, 1u8..=7).prop_map(|(object, rate, channels)| {
        let bits = u16::from(object) << 11 | u16::from(rate) << 7 | u16::from(channels) << 3;
        Codec::Aac {
            asc: bits.to_be_bytes().to_vec(),
        }
    })
}

fn opus() -> impl Strategy<Value = Codec> {
    let head = |channels: u8, family: u8, pre_skip: u16, rate: u32, gain: i16| {
        let mut v = b"OpusHead".to_vec();
        v.push(1);
        v.push(channels);
        v.extend_from_slice(&pre_skip.to_le_bytes());
        v.extend_from_slice(&rate.to_le_bytes());
        v.extend_from_slice(&gain.to_le_bytes());
        v.push(family);
        v
    };
    let simple = (1u8..=2, any::<u16>(), any::<u32>(), any::<i16>()).prop_map(
        move |(channels, pre_skip, rate, gain)| Codec::Opus {
            head: head(channels, 0, pre_skip, rate, gain),
            channels,
            family: 0,
        },
    );
    let surround = (1u8..=8, any::<u16>(), any::<u32>(), any::<i16>()).prop_flat_map(
        move |(channels, pre_skip, rate, gain)| {
            (
                1u8..=channels,
                proptest::collection::vec(0u8..=255, channels as usize),
            )
                .prop_map(move |(streams, mapping)| {
                    let mut v = head(channels, 1, pre_skip, rate, gain);
                    let coupled = (channels - streams).min(streams);
                    v.extend_from_slice(&[streams, coupled]);
                    v.extend_from_slice(&mapping);
                    Codec::Opus {
                        head: v,
                        channels,
                        family: 1,
                    }
                })
        },
    );
    prop_oneof![simple, surround]
}

fn video_codec() -> impl Strategy<Value = Codec> {
    prop_oneof![
        avcc().prop_map(|avcc| Codec::H264 { avcc }),
        hvcc().prop_map(|hvcc| Codec::Hevc { hvcc }),
        av1c().prop_map(|av1c| Codec::Av1 { av1c }),
        vp9(),
    ]
}

fn audio_codec() -> impl Strategy<Value = Codec> {
    prop_oneof![aac(), opus()]
}

/// Another codec of `codec`'s kind (a new record for the same codec).
fn same_codec(codec: &Codec) -> BoxedStrategy<Codec> {
    match codec {
        Codec::H264 { .. } => avcc().prop_map(|avcc| Codec::H264 { avcc }).boxed(),
        Codec::Hevc { .. } => hvcc().prop_map(|hvcc| Codec::Hevc { hvcc }).boxed(),
        Codec::Av1 { .. } => av1c().prop_map(|av1c| Codec::Av1 { av1c }).boxed(),
        Codec::Vp9 { .. } => vp9().boxed(),
        Codec::Aac { .. } => aac().boxed(),
        Codec::Opus { .. } => opus().boxed(),
    }
}

fn payload() -> impl Strategy<Value = PayloadSpec> {
    let size = prop_oneof![
        1 => Just(0usize),
        6 => 1usize..512,
        2 => 512usize..8192,
        1 => 8192usize..=65536,
    ];
    (size, any::<u64>(), prop::bool::weighted(0.2)).prop_map(|(size, seed, temporal_delimiter)| {
        PayloadSpec {
            size,
            seed,
            temporal_delimiter,
        }
    })
}

fn buffers(video: bool, cts: bool) -> impl Strategy<Value = Vec<InBuffer>> {
    // Mostly frame steps; some seconds-long gaps; some of 12–24 days, so that a case's
    // timeline now and then runs past the 32-bit tag timestamp.
    let step = prop_oneof![
        16 => 1u64..=40,
        2 => 1000u64..=100_000,
        2 => (1u64 << 30)..(1u64 << 31),
    ];
    let one = (
        payload(),
        step,
        0u32..1_000_000,
        if cts {
            (0u64..=1000).boxed()
        } else {
            Just(0u64).boxed()
        },
        prop::bool::weighted(if video { 0.3 } else { 1.0 }),
        prop::bool::weighted(if cts { 0.0 } else { 0.3 }),
    );
    (0u64..=3000, proptest::collection::vec(one, 1..=24)).prop_map(|(start, items)| {
        let mut dts = start;
        items
            .into_iter()
            .enumerate()
            .map(|(i, (payload, step, sub, cts_ms, keyframe, pts_only))| {
                if i > 0 {
                    dts += step;
                }
                InBuffer {
                    payload,
                    dts_ms: dts,
                    dts_sub_ns: sub,
                    cts_ms,
                    keyframe,
                    pts_only,
                }
            })
            .collect()
    })
}

fn track(video: bool, id: u8) -> impl Strategy<Value = Track> {
    let codec = if video {
        video_codec().boxed()
    } else {
        audio_codec().boxed()
    };
    let colorimetry = prop::sample::select(vec![
        None,
        Some("bt709"),
        Some("bt601"),
        Some("bt2020"),
        Some("bt2100-pq"),
        Some("bt2100-hlg"),
    ]);
    (codec, colorimetry).prop_flat_map(move |(codec, colorimetry)| {
        let other = same_codec(&codec);
        let first = codec.clone();
        let change = proptest::option::weighted(0.3, (1usize..24, other))
            .prop_filter("a change changes the record", move |c| {
                c.as_ref().is_none_or(|(_, next)| *next != first)
            });
        (buffers(video, codec.has_composition_time()), change).prop_map(move |(buffers, change)| {
            Track {
                video,
                id,
                codec: codec.clone(),
                colorimetry: colorimetry.filter(|_| video),
                change: change.filter(|(at, _)| *at < buffers.len()),
                buffers,
            }
        })
    })
}

fn tracks(
    video: bool,
    count: std::ops::RangeInclusive<usize>,
) -> impl Strategy<Value = Vec<Track>> {
    // Track ids from 0..=3: 0 is the legacy track for H.264 and AAC.
    prop::sample::subsequence(vec![0u8, 1, 2, 3], count).prop_flat_map(move |ids| {
        ids.into_iter()
            .map(|id| track(video, id))
            .collect::<Vec<_>>()
    })
}

pub(super) fn any_case() -> impl Strategy<Value = Case> {
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        tracks(false, 1..=3),
        tracks(true, 0..=2),
    )
        .prop_map(|(many_tracks, nanos, grid, audio, video)| {
            let mut tracks: Vec<Track> = audio.into_iter().chain(video).collect();
            if grid {
                // Tracks on one 20 ms clock, sharing sub-millisecond parts: many timestamps
                // meet, which is what `many-tracks` packs into one message.
                for t in &mut tracks {
                    let phase = t.buffers[0].dts_ms / 1000;
                    for (i, b) in t.buffers.iter_mut().enumerate() {
                        b.dts_ms = 20 * (phase + i as u64);
                        b.dts_sub_ns = (b.dts_ms * 7919 % MS) as u32;
                    }
                }
            }
            Case {
                many_tracks,
                nanos,
                tracks,
            }
        })
}
