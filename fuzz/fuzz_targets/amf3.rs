//! AMF3 decoding of arbitrary bytes (references, traits, externalizables, with limits picked
//! from the input), then a round trip of what decoded: encode → decode → encode must give
//! the same bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rsrtmp_engine::amf3::{self, Decoder, Limits};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_depth: usize::from(sel & 0x3F) + 1,
        max_values: if sel & 0x40 != 0 { 64 } else { 65_536 },
    };
    let mut d = Decoder::with_limits(body, limits);
    let mut decoded = Vec::new();
    while !d.is_empty() {
        let before = d.position();
        match d.decode() {
            Ok(v) => {
                assert!(d.position() > before, "decode made no progress");
                decoded.push(v);
            }
            Err(e) => {
                let _ = e.to_string();
                break;
            }
        }
    }
    // AMF3 inside AMF0 (the 0x11 switch), as command messages of type 17 carry it.
    let _ = rsrtmp_engine::amf0::decode_command_payload(17, body);

    if sel & 0x80 == 0 {
        for v in &decoded {
            let bytes = amf3::encode_to_bytes(v);
            let back = match amf3::decode(&bytes) {
                Ok(b) => b,
                Err(e) => panic!("re-encoded value does not decode: {e}\nvalue: {v:?}"),
            };
            assert_eq!(
                bytes,
                amf3::encode_to_bytes(&back),
                "encoding is not stable"
            );
        }
    }
});
