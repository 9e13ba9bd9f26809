//! Inputs the fuzzers (fuzz/, `scripts/fuzz.sh`) found problems with, kept as plain tests:
//! each feeds the bytes the way the fuzz target did and asserts a clean, specific result.

use rsrtmp_engine::flv::{FlvError, FlvItem, FlvParser};

/// Pushes `pieces` one by one, draining after each; returns the items and the first error.
fn flv_items(pieces: &[&[u8]]) -> (Vec<FlvItem>, Option<FlvError>) {
    let mut p = FlvParser::new();
    let mut items = Vec::new();
    for piece in pieces {
        p.push(piece);
        loop {
            match p.next_item() {
                Ok(Some(item)) => items.push(item),
                Ok(None) => break,
                Err(e) => return (items, Some(e)),
            }
        }
    }
    (items, None)
}

/// flv_parser: a bad signature split after two bytes was reported with a zero for the byte
/// not yet received ([46 b6 00]) instead of the real bytes ([46 b6 85]) the whole input gave.
#[test]
fn flv_bad_signature_is_the_same_however_split() {
    let whole = flv_items(&[b"F\xb6\x85\x01\x05"]);
    let split = flv_items(&[b"F\xb6", b"\x85\x01\x05"]);
    assert_eq!(whole.1, Some(FlvError::BadSignature([0x46, 0xb6, 0x85])));
    assert_eq!(split, whole);
    let bytewise = flv_items(&[b"F", b"\xb6", b"\x85"]);
    assert_eq!(bytewise.1, Some(FlvError::BadSignature([0x46, 0xb6, 0x85])));
}

/// The same with a header required and a first byte that is neither `F` nor a tag type.
#[test]
fn flv_required_header_bad_signature_is_the_same_however_split() {
    let run = |pieces: &[&[u8]]| {
        let mut p = FlvParser::new().require_header(true);
        let mut last = Ok(None);
        for piece in pieces {
            p.push(piece);
            last = p.next_item();
            if last.is_err() {
                break;
            }
        }
        last
    };
    let expected = Err(FlvError::BadSignature(*b"XYZ"));
    assert_eq!(run(&[b"XYZ"]), expected);
    assert_eq!(run(&[b"X", b"Y", b"Z"]), expected);
    assert_eq!(run(&[b"XY"]), Ok(None));
}

/// url: an app ending in vertical tabs printed as a path, and parsing the printed URL trimmed
/// them off (`trim` removes all whitespace, not only the space and tab that Display escaped).
#[test]
fn url_display_keeps_trailing_whitespace_of_app() {
    use rsrtmp_engine::url::RtmpUrl;
    let url = RtmpUrl::parse("rtmpe://[::1:1861]/l\x0b\x0b\x0b\x0b\x0b\x0b/\x0b").unwrap();
    assert_eq!(url.app, "l\x0b\x0b\x0b\x0b\x0b\x0b");
    assert_eq!(url.stream, "");
    let printed = url.to_string();
    assert_eq!(
        RtmpUrl::parse(&printed).unwrap(),
        url,
        "printed as {printed:?}"
    );
    // The same for a stream or an option value ending in other whitespace.
    let mut url = RtmpUrl::parse("rtmp://h/app/s").unwrap();
    url.stream = "s\n".into();
    url.options.push(("conn".into(), "S:x\u{a0}".into()));
    let printed = url.to_string();
    assert_eq!(
        RtmpUrl::parse(&printed).unwrap(),
        url,
        "printed as {printed:?}"
    );
}
