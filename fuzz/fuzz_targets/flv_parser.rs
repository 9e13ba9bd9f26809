//! The streaming FLV parser on arbitrary bytes, pushed whole and at arbitrary split points
//! (copied and zero-copy pushes alternating): both must yield the same headers, tags and
//! error. Tag bodies also go through the audio/video tag header parsers and the media
//! classifier both drivers use, whose header slots must name the tag's own type.
//!
//! Input: `[split seed] [options] bytes...`.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rsrtmp_engine::flv::{
    AudioInfo, FlvError, FlvItem, FlvParser, MediaClass, VideoInfo, classify,
};

mod common;

fn parser(opts: u8) -> FlvParser {
    let mut p = FlvParser::new().require_header(opts & 1 != 0);
    if opts & 2 != 0 {
        p = p.with_max_tag_size(u32::from(opts) * 16);
    }
    p
}

fn drain(p: &mut FlvParser, out: &mut Vec<FlvItem>) -> Option<FlvError> {
    loop {
        match p.next_item() {
            Ok(Some(item)) => {
                if let FlvItem::Tag(tag) = &item {
                    match classify(tag.tag_type, &tag.data) {
                        MediaClass::VideoHeader(k) => assert_eq!(k.type_id, 9),
                        MediaClass::AudioHeader(k) => assert_eq!(k.type_id, 8),
                        MediaClass::Video { .. } => assert_eq!(tag.tag_type, 9),
                        MediaClass::Audio => assert_eq!(tag.tag_type, 8),
                        MediaClass::Metadata => assert_eq!(tag.tag_type, 18),
                        MediaClass::Data => {}
                    }
                    match tag.tag_type {
                        8 => {
                            let _ = AudioInfo::parse(&tag.data).map_err(|e| e.to_string());
                        }
                        9 => {
                            let _ = VideoInfo::parse(&tag.data).map_err(|e| e.to_string());
                        }
                        _ => {}
                    }
                }
                out.push(item);
            }
            Ok(None) => return None,
            Err(e) => {
                let _ = e.to_string();
                assert_eq!(p.next_item(), Err(e.clone()), "errors are sticky");
                return Some(e);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (split, opts, body) = (data[0], data[1], &data[2..]);

    let mut whole = parser(opts);
    let mut whole_items = Vec::new();
    whole.push(body);
    let whole_err = drain(&mut whole, &mut whole_items);
    let whole_finish = whole.finish();

    let mut cut = parser(opts);
    let mut cut_items = Vec::new();
    let mut cut_err = None;
    for (i, piece) in common::Splitter::new(body, split).enumerate() {
        if i % 2 == 0 {
            cut.push(piece);
        } else {
            cut.push_bytes(Bytes::copy_from_slice(piece));
        }
        cut_err = drain(&mut cut, &mut cut_items);
        if cut_err.is_some() {
            break;
        }
    }
    assert_eq!(whole_items, cut_items, "split pushing changed the items");
    assert_eq!(whole_err, cut_err, "split pushing changed the error");
    assert_eq!(whole_finish, cut.finish());
    assert_eq!(whole.tags_parsed(), cut.tags_parsed());
});
