//! AMF0 decoding of arbitrary bytes: plain values (with limits picked from the input) and
//! every RTMP message type that carries AMF. Nothing may panic; errors must format.

#![no_main]

use libfuzzer_sys::fuzz_target;
use rsrtmp_engine::amf0::{self, Decoder, Limits};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let limits = Limits {
        max_depth: usize::from(sel & 0x3F) + 1,
        max_values: if sel & 0x40 != 0 { 64 } else { 65_536 },
    };
    let mut d = Decoder::with_limits(body, limits);
    while !d.is_empty() {
        let before = d.position();
        match d.decode() {
            Ok(v) => {
                assert!(d.position() > before, "decode made no progress");
                let _ = (v.as_str(), v.as_f64(), v.get("code"), v.properties());
            }
            Err(e) => {
                let _ = e.to_string();
                break;
            }
        }
    }
    for type_id in [15, 17, 18, 20] {
        if let Err(e) = amf0::decode_command_payload(type_id, body) {
            let _ = e.to_string();
        }
    }
});
