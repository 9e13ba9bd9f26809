//! AMF0 round trip: whatever decodes must re-encode to bytes that decode to an equal value,
//! and encoding is stable (encode → decode → encode gives the same bytes).

#![no_main]

use libfuzzer_sys::fuzz_target;
use rsrtmp_engine::amf0;

fn has_nan(v: &amf0::Value) -> bool {
    // NaN != NaN, so value equality is only checked for NaN-free values; byte equality still
    // covers them.
    format!("{v:?}").contains("NaN")
}

fuzz_target!(|data: &[u8]| {
    let Ok(values) = amf0::decode_all(data) else {
        return;
    };
    let encoded = amf0::encode_all(&values);
    let again = match amf0::decode_all(&encoded) {
        Ok(v) => v,
        Err(e) => panic!("re-encoded values do not decode: {e}\nvalues: {values:?}"),
    };
    if !values.iter().any(has_nan) {
        assert_eq!(values, again, "decode(encode(v)) != v");
    }
    let encoded_again = amf0::encode_all(&again);
    assert_eq!(encoded, encoded_again, "encoding is not stable");
});
