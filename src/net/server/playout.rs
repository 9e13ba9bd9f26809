//! The serversink's input side: FLV bytes in, shared encoded messages out to a [`Hub`].
//!
//! Each tag becomes one RTMP message on the players' message stream, chunk-encoded exactly once
//! (full type-0 header, [`CHUNK_SIZE`], one of the session's reserved media chunk streams) into
//! a `Bytes` that every player's queue then references. Parsing ([`FlvPlayout::parse`]) and
//! publishing ([`publish_message`]) are apart so that the sink can pace raw FLV in between.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use rsrtmp_engine::chunk::encode_message_full;
use rsrtmp_engine::flv::{FlvError, FlvItem, FlvParser, TimelineJoiner};
use rsrtmp_engine::message::{Message, msg_type};
use rsrtmp_engine::session::MediaCsids;

use crate::net::server::hub::{Frame, Hub, Input, Kind};
use rsrtmp_engine::flv::{MediaClass, classify};
use rsrtmp_engine::legacy;

/// Outgoing chunk size of every server session, and so of the shared bytes.
pub const CHUNK_SIZE: u32 = 4096;
/// Message stream id the shared bytes carry: what the server session gives a client's first
/// `createStream`. A player on another stream id gets the message through its own session.
pub const PLAY_STREAM_ID: u32 = 1;
/// Chunk stream ids of the shared bytes; the server session never uses them itself.
pub const MEDIA_CSIDS: MediaCsids = MediaCsids {
    audio: 20,
    video: 21,
    data: 22,
};

/// Encodes one message for sharing.
pub fn shared_frame(message: Message, kind: Kind, keyframe: bool) -> Arc<Frame> {
    let csid = match kind {
        Kind::Video => MEDIA_CSIDS.video,
        Kind::Audio => MEDIA_CSIDS.audio,
        Kind::Data => MEDIA_CSIDS.data,
    };
    let message = Message {
        stream_id: PLAY_STREAM_ID,
        ..message
    };
    let mut out =
        BytesMut::with_capacity(message.payload.len() + message.payload.len() / 4096 * 5 + 32);
    encode_message_full(csid, &message, CHUNK_SIZE, &mut out);
    let needs = legacy::needs(message.type_id, &message.payload);
    let time = message.timestamp;
    // Only the encoded bytes are kept (see `Frame::message`): the original payload goes.
    Arc::new(Frame {
        needs,
        bytes: out.freeze(),
        chunk_size: CHUNK_SIZE,
        kind,
        keyframe,
        time,
    })
}

/// Classifies and encodes one message and hands it to the hub.
pub fn publish_message(hub: &Hub, message: Message) {
    if let Some(input) = hub_input(message) {
        hub.push(input);
    }
}

/// [`publish_message`] for messages that arrived together: the hub writes them to each player
/// in one send.
pub fn publish_batch(hub: &Hub, messages: impl IntoIterator<Item = Message>) {
    hub.push_batch(messages.into_iter().filter_map(hub_input));
}

/// What the hub takes of one message (media and data only), encoded for sharing.
fn hub_input(message: Message) -> Option<Input> {
    if !matches!(
        message.type_id,
        msg_type::AUDIO | msg_type::VIDEO | msg_type::DATA_AMF0 | msg_type::DATA_AMF3
    ) {
        return None;
    }
    let input = match classify(message.type_id, &message.payload) {
        // Stamped 0 wherever it sits in the stream (flvmux re-sends it with the current time
        // when tags change): FFmpeg only takes an `onMetaData` at 0 as the stream's metadata,
        // any other time opens an extra data stream. A joiner gets it first, before the
        // sequence headers and the GOP; players already there take it as an update.
        MediaClass::Metadata => Input::Metadata(shared_frame(
            Message {
                timestamp: 0,
                ..message
            },
            Kind::Data,
            false,
        )),
        MediaClass::VideoHeader(key) => {
            Input::Header(key, shared_frame(message, Kind::Video, false))
        }
        MediaClass::AudioHeader(key) => {
            Input::Header(key, shared_frame(message, Kind::Audio, false))
        }
        MediaClass::Video { keyframe, .. } => {
            Input::Frame(shared_frame(message, Kind::Video, keyframe))
        }
        MediaClass::Audio => Input::Frame(shared_frame(message, Kind::Audio, false)),
        MediaClass::Data => Input::Frame(shared_frame(message, Kind::Data, false)),
    };
    Some(input)
}

/// One tag of the input as the message players get, and its place on the 64-bit timeline.
#[derive(Debug)]
pub struct PlayoutTag {
    /// Milliseconds: the message's timestamp, extended (and joined across files).
    pub time: u64,
    pub message: Message,
}

/// FLV input of one serversink.
#[derive(Default)]
pub struct FlvPlayout {
    parser: FlvParser,
    timeline: TimelineJoiner,
}

impl FlvPlayout {
    pub fn new() -> FlvPlayout {
        FlvPlayout::default()
    }

    /// Parses `data` (any piece of an FLV stream) and returns every tag it completes, in
    /// order. With `files` the input is FLV read from files, whose timestamps start again
    /// with each file (a loop, the next file): the tags continue one timeline
    /// ([`TimelineJoiner`]); otherwise they keep the timestamps they carry.
    pub fn parse(&mut self, data: Bytes, files: bool) -> Result<Vec<PlayoutTag>, FlvError> {
        self.parser.push_bytes(data);
        let mut tags = Vec::new();
        while let Some(item) = self.parser.next_item()? {
            let tag = match item {
                FlvItem::Header(_) => {
                    self.timeline.header();
                    continue;
                }
                FlvItem::Tag(tag) => tag,
            };
            let time = if files {
                self.timeline.join(tag.tag_type, tag.timestamp)
            } else {
                self.timeline.follow(tag.tag_type, tag.timestamp)
            };
            // FLV from a publisher-side muxer may keep the `@setDataFrame` prefix; players
            // expect the bare `onMetaData`.
            let payload = if tag.tag_type == msg_type::DATA_AMF0 {
                rsrtmp_engine::flv::strip_set_data_frame(&tag.data)
            } else {
                tag.data
            };
            tags.push(PlayoutTag {
                time,
                message: Message {
                    type_id: tag.tag_type,
                    timestamp: time as u32,
                    stream_id: PLAY_STREAM_ID,
                    payload,
                },
            });
        }
        Ok(tags)
    }

    /// End of stream: every player is told; the next input starts a new stream, with a new
    /// timeline.
    pub fn end(&mut self, hub: &Hub) {
        hub.end_stream();
        self.parser = FlvParser::new();
        self.timeline.reset();
    }

    /// Forgets partial input (a new stream starts upstream). The players' stream goes on:
    /// what comes next continues its timeline like a file after a file.
    pub fn reset(&mut self) {
        self.parser = FlvParser::new();
        self.timeline.header();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::server::hub::{HubConfig, Item};
    use rsrtmp_engine::chunk::{ChunkLimits, ChunkReader};
    use rsrtmp_engine::flv::{FlvHeader, Tag, write_header, write_tag};

    fn flv(tags: &[(u8, u32, &[u8])]) -> Vec<u8> {
        let mut out = BytesMut::new();
        write_header(&FlvHeader::new(true, true), &mut out);
        for (t, ts, body) in tags {
            let tag = Tag {
                tag_type: *t,
                timestamp: *ts,
                stream_id: 0,
                data: Bytes::copy_from_slice(body),
            };
            write_tag(&tag, &mut out).unwrap();
        }
        out.to_vec()
    }

    #[test]
    fn files_one_after_another_continue_one_timeline() {
        let file = flv(&[
            (9, 0, &[0x17, 0, 0, 0, 0, 1]),
            (9, 0, &[0x17, 1]),
            (9, 40, &[0x27, 1]),
        ]);
        let mut twice = file.clone();
        twice.extend_from_slice(&file);
        let times = |files| {
            let mut p = FlvPlayout::new();
            p.parse(Bytes::from(twice.clone()), files)
                .unwrap()
                .iter()
                .map(|t| (t.time, t.message.timestamp))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            times(true),
            [(0, 0), (0, 0), (40, 40), (80, 80), (80, 80), (120, 120)]
        );
        assert_eq!(
            times(false),
            [(0, 0), (0, 0), (40, 40), (0, 0), (0, 0), (40, 40)]
        );
    }

    #[test]
    fn flv_split_anywhere_reaches_players_as_decodable_chunks() {
        let big = vec![0x27u8; 10_000];
        let mut key = vec![0x17u8, 1, 0, 0, 0];
        key.extend_from_slice(&[7; 5000]);
        let file = flv(&[
            (
                18,
                0,
                b"\x02\x00\x0d@setDataFrame\x02\x00\x0aonMetaData\x05",
            ),
            (9, 0, &[0x17, 0, 0, 0, 0, 1]),
            (9, 0, &key),
            (9, 33, &big),
        ]);
        for split in [1usize, 7, 100, 4096] {
            let hub = Hub::new(HubConfig::default());
            let player = hub.add_player("127.0.0.1:9".parse().unwrap());
            let mut p = FlvPlayout::new();
            for piece in file.chunks(split) {
                for tag in p.parse(Bytes::copy_from_slice(piece), false).unwrap() {
                    publish_message(&hub, tag.message);
                }
            }
            let mut items = Vec::new();
            player.take(&mut items, usize::MAX);
            let mut reader = ChunkReader::new(ChunkLimits::default());
            // What a player's session would have announced first.
            reader.feed(&[2, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0x10, 0]);
            for item in &items {
                let Item::Frame(f, _) = item else {
                    panic!("unexpected {item:?}")
                };
                reader.feed(&f.bytes);
            }
            let mut got = Vec::new();
            while let Some(m) = reader.read_message().unwrap() {
                if m.type_id != msg_type::SET_CHUNK_SIZE {
                    got.push(m);
                }
            }
            assert_eq!(got.len(), 4, "split {split}");
            assert_eq!(&got[0].payload[..], b"\x02\x00\x0aonMetaData\x05");
            assert_eq!(got[2].payload.len(), key.len());
            assert_eq!(got[3].payload, Bytes::from(big.clone()));
            assert_eq!(got[3].timestamp, 33);
            assert!(got.iter().all(|m| m.stream_id == PLAY_STREAM_ID));
        }
    }
}
