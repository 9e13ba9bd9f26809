//! AMF0 values and codec (protocol-facts §6.1), and the bodies of RTMP command and data
//! messages (§5.6).
//!
//! Decoding never trusts a declared length or count: nothing is allocated beyond what the
//! remaining input could hold, nesting is bounded by [`Limits::max_depth`] and the number of
//! values per [`Decoder::decode`] call by [`Limits::max_values`]. References (0x07) are not
//! resolved, only checked against the complex values seen so far in the same decoder (one
//! decoder = one message). Invalid UTF-8 is replaced, not rejected: peers do send it, and a
//! command should not fail over a mangled description string.
//!
//! The value enum has no variant for the `unsupported` marker (0x0D); it decodes to
//! [`Value::Undefined`], the closest meaning ("no value that can be sent").

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

use crate::amf3::{self, Amf3Error};

/// Hard ceiling on nesting, whatever the caller asks for, so decoding (and dropping the
/// result) cannot overflow the stack.
const DEPTH_CAP: usize = 256;

mod marker {
    pub const NUMBER: u8 = 0x00;
    pub const BOOLEAN: u8 = 0x01;
    pub const STRING: u8 = 0x02;
    pub const OBJECT: u8 = 0x03;
    pub const MOVIECLIP: u8 = 0x04;
    pub const NULL: u8 = 0x05;
    pub const UNDEFINED: u8 = 0x06;
    pub const REFERENCE: u8 = 0x07;
    pub const ECMA_ARRAY: u8 = 0x08;
    pub const OBJECT_END: u8 = 0x09;
    pub const STRICT_ARRAY: u8 = 0x0A;
    pub const DATE: u8 = 0x0B;
    pub const LONG_STRING: u8 = 0x0C;
    pub const UNSUPPORTED: u8 = 0x0D;
    pub const RECORDSET: u8 = 0x0E;
    pub const XML_DOCUMENT: u8 = 0x0F;
    pub const TYPED_OBJECT: u8 = 0x10;
    pub const AVMPLUS: u8 = 0x11;
}

/// An AMF0 value. Objects keep their properties in wire order (a `Vec`, not a map): RTMP
/// peers care about the order of keys in the `connect` command object, and round trips must be
/// byte exact.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Number(f64),
    Boolean(bool),
    /// Marker 0x02, or 0x0C (long string) when decoded; the encoder picks 0x0C for strings of
    /// 65 536 bytes or more.
    String(String),
    Object(Vec<(String, Value)>),
    Null,
    Undefined,
    /// Index into the table of complex values seen so far in this message.
    Reference(u16),
    EcmaArray(Vec<(String, Value)>),
    StrictArray(Vec<Value>),
    /// Milliseconds since the Unix epoch, and the reserved time-zone field.
    Date { millis: f64, time_zone: i16 },
    XmlDocument(String),
    TypedObject {
        class_name: String,
        properties: Vec<(String, Value)>,
    },
    /// Marker 0x11: one AMF3 value follows.
    Amf3(crate::amf3::Value),
}

impl Value {
    /// An anonymous object with these properties, in this order.
    pub fn object<K: Into<String>>(props: impl IntoIterator<Item = (K, Value)>) -> Self {
        Value::Object(collect_props(props))
    }

    /// An ECMA array with these properties, in this order.
    pub fn ecma_array<K: Into<String>>(props: impl IntoIterator<Item = (K, Value)>) -> Self {
        Value::EcmaArray(collect_props(props))
    }

    /// A typed object of class `class_name`.
    pub fn typed_object<K: Into<String>>(
        class_name: impl Into<String>,
        props: impl IntoIterator<Item = (K, Value)>,
    ) -> Self {
        Value::TypedObject {
            class_name: class_name.into(),
            properties: collect_props(props),
        }
    }

    /// A strict array of these values.
    pub fn strict_array(items: impl IntoIterator<Item = Value>) -> Self {
        Value::StrictArray(items.into_iter().collect())
    }

    /// The text of a string (AMF0, or AMF3 behind the 0x11 switch).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            Value::Amf3(v) => v.as_str(),
            _ => None,
        }
    }

    /// A number (AMF0, or AMF3 integer or double behind the 0x11 switch).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            Value::Amf3(v) => v.as_f64(),
            _ => None,
        }
    }

    /// A boolean (AMF0, or AMF3 behind the 0x11 switch).
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Boolean(b) => Some(*b),
            Value::Amf3(v) => v.as_bool(),
            _ => None,
        }
    }

    /// True for null and undefined (AMF0 or AMF3), which RTMP peers use interchangeably for
    /// "no command object".
    pub fn is_null_or_undefined(&self) -> bool {
        matches!(
            self,
            Value::Null
                | Value::Undefined
                | Value::Amf3(amf3::Value::Null | amf3::Value::Undefined)
        )
    }

    /// The properties of an object, ECMA array or typed object.
    pub fn properties(&self) -> Option<&[(String, Value)]> {
        match self {
            Value::Object(p) | Value::EcmaArray(p) => Some(p),
            Value::TypedObject { properties, .. } => Some(properties),
            _ => None,
        }
    }

    /// The first property called `key` of an object, ECMA array or typed object. AMF3 objects
    /// behind the 0x11 switch are reached with `amf3::Value::get` instead.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.properties()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
}

fn collect_props<K: Into<String>>(
    props: impl IntoIterator<Item = (K, Value)>,
) -> Vec<(String, Value)> {
    props.into_iter().map(|(k, v)| (k.into(), v)).collect()
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl From<f64> for Value {
    fn from(n: f64) -> Self {
        Value::Number(n)
    }
}

impl From<u32> for Value {
    fn from(n: u32) -> Self {
        Value::Number(n.into())
    }
}

impl From<i32> for Value {
    fn from(n: i32) -> Self {
        Value::Number(n.into())
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Boolean(b)
    }
}

impl From<amf3::Value> for Value {
    fn from(v: amf3::Value) -> Self {
        Value::Amf3(v)
    }
}

/// Decoding limits, shared by AMF0 and AMF3 (an AMF3 value behind the 0x11 switch uses what
/// the enclosing AMF0 value left).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Deepest nesting of values; a top-level value is at depth 1. Capped at 256 whatever
    /// is asked, to keep the stack bounded.
    pub max_depth: usize,
    /// Most values produced by one decode call (for AMF3 this includes copies made to
    /// resolve references).
    pub max_values: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 64,
            max_values: 65_536,
        }
    }
}

impl Limits {
    pub(crate) fn capped(self) -> Self {
        Limits {
            max_depth: self.max_depth.min(DEPTH_CAP),
            ..self
        }
    }
}

/// Why AMF0 input (or an RTMP message body) could not be decoded. Offsets are from the start
/// of the decoder's buffer.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum Amf0Error {
    #[error(
        "AMF0 input truncated at offset {offset}: {what} needs {needed} bytes, {remaining} left"
    )]
    Truncated {
        offset: usize,
        what: &'static str,
        needed: u64,
        remaining: usize,
    },
    #[error("AMF0 marker {marker:#04x} at offset {offset} is not a known marker (0x00-0x11)")]
    UnknownMarker { offset: usize, marker: u8 },
    #[error("AMF0 marker {marker:#04x} ({name}) at offset {offset} is reserved and not supported")]
    Unsupported {
        offset: usize,
        marker: u8,
        name: &'static str,
    },
    #[error("AMF0 object-end marker 0x09 at offset {offset} outside an object's `00 00 09` end")]
    StrayObjectEnd { offset: usize },
    #[error(
        "AMF0 reference to index {index} at offset {offset}, but only {known} complex values precede it"
    )]
    BadReference {
        offset: usize,
        index: u16,
        known: usize,
    },
    #[error("AMF0 value at offset {offset} nests deeper than the limit of {limit} levels")]
    TooDeep { offset: usize, limit: usize },
    #[error("AMF0 input at offset {offset} holds more than the limit of {limit} values")]
    TooManyValues { offset: usize, limit: usize },
    #[error(transparent)]
    Amf3(#[from] Amf3Error),
    #[error("message type {type_id} has an empty body; expected the format byte 0")]
    MissingFormatByte { type_id: u8 },
    #[error("message type {type_id} has format byte {byte:#04x}; only 0 is defined")]
    BadFormatByte { type_id: u8, byte: u8 },
    #[error(
        "message type {type_id} does not carry AMF values (expected 15-20: data, shared object or command)"
    )]
    NotAmfMessage { type_id: u8 },
}

type Result<T> = std::result::Result<T, Amf0Error>;

/// Decodes AMF0 values from one message body. The reference table (complex values seen)
/// spans all `decode` calls on the same decoder.
#[derive(Debug)]
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    limits: Limits,
    /// Objects, typed objects, ECMA and strict arrays begun so far.
    complex: usize,
    /// Values left in the current call's budget.
    budget: usize,
}

impl<'a> Decoder<'a> {
    /// A decoder over `buf` with the default [`Limits`].
    pub fn new(buf: &'a [u8]) -> Self {
        Self::with_limits(buf, Limits::default())
    }

    /// A decoder over `buf` with explicit limits (`max_depth` is capped, see [`Limits`]).
    pub fn with_limits(buf: &'a [u8], limits: Limits) -> Self {
        Decoder {
            buf,
            pos: 0,
            limits: limits.capped(),
            complex: 0,
            budget: 0,
        }
    }

    /// True when all input has been consumed.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Offset of the next unread byte.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// Decodes the next value. On error the position is unspecified: discard the decoder.
    pub fn decode(&mut self) -> Result<Value> {
        self.budget = self.limits.max_values;
        self.value(1)
    }

    fn take(&mut self, n: u64, what: &'static str) -> Result<&'a [u8]> {
        let remaining = self.buf.len() - self.pos;
        if n > remaining as u64 {
            return Err(Amf0Error::Truncated {
                offset: self.pos,
                what,
                needed: n,
                remaining,
            });
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.buf[start..self.pos])
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        Ok(self.take(N as u64, what)?.try_into().expect("N bytes"))
    }

    fn u16(&mut self, what: &'static str) -> Result<u16> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    fn f64(&mut self, what: &'static str) -> Result<f64> {
        Ok(f64::from_be_bytes(self.array(what)?))
    }

    fn text(&mut self, len: u64, what: &'static str) -> Result<String> {
        Ok(String::from_utf8_lossy(self.take(len, what)?).into_owned())
    }

    /// Properties up to and including the `00 00 09` end.
    fn properties(&mut self, depth: usize) -> Result<Vec<(String, Value)>> {
        let mut props = Vec::new();
        loop {
            let len = self.u16("property name length")?;
            if len == 0 && self.buf.get(self.pos) == Some(&marker::OBJECT_END) {
                self.pos += 1;
                return Ok(props);
            }
            let key = self.text(len.into(), "property name")?;
            let v = self.value(depth + 1)?;
            props.push((key, v));
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value> {
        let offset = self.pos;
        if depth > self.limits.max_depth {
            return Err(Amf0Error::TooDeep {
                offset,
                limit: self.limits.max_depth,
            });
        }
        self.budget = self.budget.checked_sub(1).ok_or(Amf0Error::TooManyValues {
            offset,
            limit: self.limits.max_values,
        })?;
        let [m] = self.array("value marker")?;
        Ok(match m {
            marker::NUMBER => Value::Number(self.f64("number")?),
            marker::BOOLEAN => Value::Boolean(self.array::<1>("boolean")?[0] != 0),
            marker::STRING => {
                let len = self.u16("string length")?;
                Value::String(self.text(len.into(), "string")?)
            }
            marker::LONG_STRING => {
                let len = self.u32("long string length")?;
                Value::String(self.text(len.into(), "long string")?)
            }
            marker::XML_DOCUMENT => {
                let len = self.u32("XML document length")?;
                Value::XmlDocument(self.text(len.into(), "XML document")?)
            }
            marker::OBJECT => {
                self.complex += 1;
                Value::Object(self.properties(depth)?)
            }
            marker::TYPED_OBJECT => {
                self.complex += 1;
                let len = self.u16("class name length")?;
                let class_name = self.text(len.into(), "class name")?;
                Value::TypedObject {
                    class_name,
                    properties: self.properties(depth)?,
                }
            }
            marker::ECMA_ARRAY => {
                self.complex += 1;
                // The count is advisory (FFmpeg ignores it too); the terminator decides.
                self.u32("ECMA array count")?;
                Value::EcmaArray(self.properties(depth)?)
            }
            marker::STRICT_ARRAY => {
                self.complex += 1;
                let count = self.u32("strict array count")? as usize;
                // Every value takes at least its marker byte.
                let mut items = Vec::with_capacity(count.min(self.buf.len() - self.pos));
                for _ in 0..count {
                    items.push(self.value(depth + 1)?);
                }
                Value::StrictArray(items)
            }
            marker::NULL => Value::Null,
            marker::UNDEFINED | marker::UNSUPPORTED => Value::Undefined,
            marker::REFERENCE => {
                let index = self.u16("reference index")?;
                if usize::from(index) >= self.complex {
                    return Err(Amf0Error::BadReference {
                        offset,
                        index,
                        known: self.complex,
                    });
                }
                Value::Reference(index)
            }
            marker::DATE => {
                let millis = self.f64("date")?;
                let time_zone = i16::from_be_bytes(self.array("date time zone")?);
                Value::Date { millis, time_zone }
            }
            marker::AVMPLUS => {
                // Fresh AMF3 context: the switch is not sticky. It gets what is left of
                // our depth and value budgets.
                let limits = Limits {
                    max_depth: self.limits.max_depth + 1 - depth,
                    max_values: self.budget + 1,
                };
                let mut d = amf3::Decoder::at(self.buf, self.pos, limits);
                let (v, used) = d.decode_counted()?;
                self.pos = d.position();
                self.budget = (self.budget + 1).saturating_sub(used);
                Value::Amf3(v)
            }
            marker::OBJECT_END => return Err(Amf0Error::StrayObjectEnd { offset }),
            marker::MOVIECLIP => {
                return Err(Amf0Error::Unsupported {
                    offset,
                    marker: m,
                    name: "movieclip",
                });
            }
            marker::RECORDSET => {
                return Err(Amf0Error::Unsupported {
                    offset,
                    marker: m,
                    name: "recordset",
                });
            }
            marker => return Err(Amf0Error::UnknownMarker { offset, marker }),
        })
    }
}

/// Decodes every value in `buf` (one message body) with default limits.
pub fn decode_all(buf: &[u8]) -> Result<Vec<Value>> {
    let mut d = Decoder::new(buf);
    let mut values = Vec::new();
    while !d.is_empty() {
        values.push(d.decode()?);
    }
    Ok(values)
}

/// Appends the encoding of `v`.
///
/// Values beyond what the format can express are truncated: property and class names to
/// 65 535 bytes, long strings and XML to 4 GiB, arrays to 2^32 - 1 items. An empty property
/// name is written as is; it round-trips because no value starts with the 0x09 end marker.
pub fn encode(v: &Value, out: &mut impl BufMut) {
    match v {
        &Value::Number(n) => {
            out.put_u8(marker::NUMBER);
            out.put_f64(n);
        }
        &Value::Boolean(b) => {
            out.put_u8(marker::BOOLEAN);
            out.put_u8(u8::from(b));
        }
        Value::String(s) if s.len() <= usize::from(u16::MAX) => {
            out.put_u8(marker::STRING);
            put_short_str(out, s);
        }
        Value::String(s) => {
            out.put_u8(marker::LONG_STRING);
            put_long_str(out, s);
        }
        Value::XmlDocument(s) => {
            out.put_u8(marker::XML_DOCUMENT);
            put_long_str(out, s);
        }
        Value::Object(props) => {
            out.put_u8(marker::OBJECT);
            put_properties(out, props);
        }
        Value::TypedObject {
            class_name,
            properties,
        } => {
            out.put_u8(marker::TYPED_OBJECT);
            put_short_str(out, class_name);
            put_properties(out, properties);
        }
        Value::EcmaArray(props) => {
            out.put_u8(marker::ECMA_ARRAY);
            out.put_u32(u32::try_from(props.len()).unwrap_or(u32::MAX));
            put_properties(out, props);
        }
        Value::StrictArray(items) => {
            let items = &items[..items.len().min(u32::MAX as usize)];
            out.put_u8(marker::STRICT_ARRAY);
            out.put_u32(items.len() as u32);
            for v in items {
                encode(v, out);
            }
        }
        Value::Null => out.put_u8(marker::NULL),
        Value::Undefined => out.put_u8(marker::UNDEFINED),
        &Value::Reference(index) => {
            out.put_u8(marker::REFERENCE);
            out.put_u16(index);
        }
        &Value::Date { millis, time_zone } => {
            out.put_u8(marker::DATE);
            out.put_f64(millis);
            out.put_i16(time_zone);
        }
        Value::Amf3(v) => {
            out.put_u8(marker::AVMPLUS);
            amf3::encode(v, out);
        }
    }
}

fn truncate_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn put_short_str(out: &mut impl BufMut, s: &str) {
    let s = truncate_str(s, u16::MAX.into());
    out.put_u16(s.len() as u16);
    out.put_slice(s.as_bytes());
}

fn put_long_str(out: &mut impl BufMut, s: &str) {
    let s = truncate_str(s, u32::MAX as usize);
    out.put_u32(s.len() as u32);
    out.put_slice(s.as_bytes());
}

fn put_properties(out: &mut impl BufMut, props: &[(String, Value)]) {
    for (k, v) in props {
        put_short_str(out, k);
        encode(v, out);
    }
    out.put_slice(&[0, 0, marker::OBJECT_END]);
}

/// The encoding of all `values`, one after another (one message body).
pub fn encode_all(values: &[Value]) -> Bytes {
    let mut out = BytesMut::new();
    for v in values {
        encode(v, &mut out);
    }
    out.freeze()
}

/// True for the message types whose body starts with a format byte (§5.6).
fn has_format_byte(type_id: u8) -> bool {
    matches!(type_id, 15..=17)
}

/// Decodes the AMF values of an RTMP message body: type 20 (command), 18 (data) and 19
/// (shared object) are plain AMF0; 17, 15 and 16 start with a format byte that must be 0,
/// followed by AMF0 values any of which may switch to AMF3 with 0x11.
///
/// Shared-object bodies (19, and 16 after its format byte) begin with a header that is not
/// an AMF value (§5.6); give them to a shared-object parser, not to this function, unless
/// the peer is known to send bare values.
pub fn decode_command_payload(type_id: u8, payload: &[u8]) -> Result<Vec<Value>> {
    match type_id {
        18..=20 => decode_all(payload),
        15..=17 => match payload.split_first() {
            None => Err(Amf0Error::MissingFormatByte { type_id }),
            Some((0, rest)) => {
                // Offsets in errors should still point into `payload`.
                let mut d = Decoder::new(payload);
                d.pos = payload.len() - rest.len();
                let mut values = Vec::new();
                while !d.is_empty() {
                    values.push(d.decode()?);
                }
                Ok(values)
            }
            Some((&byte, _)) => Err(Amf0Error::BadFormatByte { type_id, byte }),
        },
        _ => Err(Amf0Error::NotAmfMessage { type_id }),
    }
}

/// Encodes `values` as the body of a message of type `type_id`: with the format byte 0 for
/// types 15-17, plain AMF0 otherwise.
pub fn encode_command_payload(type_id: u8, values: &[Value]) -> Bytes {
    let mut out = BytesMut::new();
    if has_format_byte(type_id) {
        out.put_u8(0);
    }
    for v in values {
        encode(v, &mut out);
    }
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc(v: &Value) -> Vec<u8> {
        encode_all(std::slice::from_ref(v)).to_vec()
    }

    fn decode_one(bytes: &[u8]) -> Result<Value> {
        let mut d = Decoder::new(bytes);
        let v = d.decode()?;
        assert!(
            d.is_empty(),
            "{} bytes left over",
            bytes.len() - d.position()
        );
        Ok(v)
    }

    #[test]
    fn golden_vectors() {
        let connect = b"\x02\x00\x07connect";
        assert_eq!(enc(&"connect".into()), connect);
        assert_eq!(decode_one(connect), Ok("connect".into()));
        let one = [0x00, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0];
        assert_eq!(enc(&1.0.into()), one);
        assert_eq!(decode_one(&one), Ok(Value::Number(1.0)));
        let window = [0x00, 0x41, 0x43, 0x12, 0xD0, 0, 0, 0, 0];
        assert_eq!(enc(&2_500_000.0.into()), window);
        assert_eq!(decode_one(&window), Ok(Value::Number(2_500_000.0)));
    }

    /// The `connect` command FFmpeg sends to play, built byte by byte (not with the encoder).
    fn connect_bytes() -> Vec<u8> {
        fn name(out: &mut Vec<u8>, s: &str) {
            out.extend_from_slice(&(s.len() as u16).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        fn string(out: &mut Vec<u8>, k: &str, s: &str) {
            name(out, k);
            out.push(0x02);
            name(out, s);
        }
        fn number(out: &mut Vec<u8>, k: &str, n: f64) {
            name(out, k);
            out.push(0x00);
            out.extend_from_slice(&n.to_be_bytes());
        }
        let mut b = b"\x02\x00\x07connect\x00\x3F\xF0\0\0\0\0\0\0\x03".to_vec();
        string(&mut b, "app", "live");
        string(&mut b, "flashVer", "LNX 9,0,124,2");
        string(&mut b, "tcUrl", "rtmp://localhost:1935/live");
        name(&mut b, "fpad");
        b.extend_from_slice(&[0x01, 0x00]);
        number(&mut b, "capabilities", 15.0);
        number(&mut b, "audioCodecs", 4071.0);
        number(&mut b, "videoCodecs", 252.0);
        number(&mut b, "videoFunction", 1.0);
        number(&mut b, "objectEncoding", 0.0);
        b.extend_from_slice(&[0x00, 0x00, 0x09]);
        b
    }

    fn connect_values() -> Vec<Value> {
        vec![
            "connect".into(),
            1.0.into(),
            Value::object([
                ("app", "live".into()),
                ("flashVer", "LNX 9,0,124,2".into()),
                ("tcUrl", "rtmp://localhost:1935/live".into()),
                ("fpad", false.into()),
                ("capabilities", 15.0.into()),
                ("audioCodecs", 4071.0.into()),
                ("videoCodecs", 252.0.into()),
                ("videoFunction", 1.0.into()),
                ("objectEncoding", 0.0.into()),
            ]),
        ]
    }

    #[test]
    fn connect_command_round_trips_byte_exact() {
        let bytes = connect_bytes();
        let values = decode_command_payload(20, &bytes).unwrap();
        assert_eq!(values, connect_values());
        assert_eq!(encode_command_payload(20, &values), bytes);
        let obj = &values[2];
        assert_eq!(obj.get("app").and_then(Value::as_str), Some("live"));
        assert_eq!(obj.get("audioCodecs").and_then(Value::as_f64), Some(4071.0));
        assert_eq!(obj.get("fpad").and_then(Value::as_bool), Some(false));
        assert_eq!(obj.get("missing"), None);
    }

    #[test]
    fn amf3_container_messages() {
        // Type 17: format byte, then AMF0 values, one of them switched to AMF3.
        let mut body = vec![0x00];
        body.extend_from_slice(b"\x02\x00\x07connect");
        body.extend_from_slice(&[0x11, 0x04, 0x01]); // AMF3 integer 1
        body.push(0x05); // back in AMF0: null
        let values = decode_command_payload(17, &body).unwrap();
        assert_eq!(
            values,
            [
                "connect".into(),
                Value::Amf3(amf3::Value::Integer(1)),
                Value::Null
            ]
        );
        assert_eq!(values[1].as_f64(), Some(1.0));
        assert_eq!(encode_command_payload(17, &values), body);
        assert_eq!(decode_command_payload(15, &body), Ok(values.clone()));
        assert_eq!(decode_command_payload(16, &body), Ok(values));

        assert_eq!(
            decode_command_payload(17, &[]),
            Err(Amf0Error::MissingFormatByte { type_id: 17 })
        );
        assert_eq!(
            decode_command_payload(15, &[0x03, 0x05]),
            Err(Amf0Error::BadFormatByte {
                type_id: 15,
                byte: 3
            })
        );
        assert_eq!(
            decode_command_payload(9, &[0x05]),
            Err(Amf0Error::NotAmfMessage { type_id: 9 })
        );
        // Error offsets count the format byte.
        assert_eq!(
            decode_command_payload(17, &[0x00, 0x05, 0x12]),
            Err(Amf0Error::UnknownMarker {
                offset: 2,
                marker: 0x12
            })
        );
        assert_eq!(
            encode_command_payload(18, &[Value::Null]),
            [0x05].as_slice()
        );
    }

    #[test]
    fn every_marker() {
        assert_eq!(decode_one(&[0x01, 0x00]), Ok(false.into()));
        assert_eq!(decode_one(&[0x01, 0x7F]), Ok(true.into()));
        assert_eq!(enc(&true.into()), [0x01, 0x01]);
        assert_eq!(decode_one(&[0x05]), Ok(Value::Null));
        assert_eq!(decode_one(&[0x06]), Ok(Value::Undefined));
        assert_eq!(decode_one(&[0x0D]), Ok(Value::Undefined));
        assert_eq!(
            decode_one(&[0x0C, 0, 0, 0, 2, b'h', b'i']),
            Ok("hi".into()),
            "long string decodes to String"
        );
        let xml = [0x0F, 0, 0, 0, 3, b'<', b'a', b'>'];
        assert_eq!(decode_one(&xml), Ok(Value::XmlDocument("<a>".into())));
        assert_eq!(enc(&Value::XmlDocument("<a>".into())), xml);

        let mut date = vec![0x0B];
        date.extend_from_slice(&1.5e12f64.to_be_bytes());
        date.extend_from_slice(&[0xFF, 0xC4]);
        let d = Value::Date {
            millis: 1.5e12,
            time_zone: -60,
        };
        assert_eq!(decode_one(&date), Ok(d.clone()));
        assert_eq!(enc(&d), date);

        let typed = b"\x10\x00\x01C\x00\x01x\x05\x00\x00\x09";
        let t = Value::typed_object("C", [("x", Value::Null)]);
        assert_eq!(decode_one(typed), Ok(t.clone()));
        assert_eq!(enc(&t), typed);
        assert_eq!(t.get("x"), Some(&Value::Null));

        // The ECMA count is ignored on input and correct on output.
        let ecma = b"\x08\x00\x00\x00\x07\x00\x01k\x05\x00\x00\x09";
        let e = Value::ecma_array([("k", Value::Null)]);
        assert_eq!(decode_one(ecma), Ok(e.clone()));
        assert_eq!(enc(&e), b"\x08\x00\x00\x00\x01\x00\x01k\x05\x00\x00\x09");

        let strict = [0x0A, 0, 0, 0, 2, 0x05, 0x06];
        let s = Value::strict_array([Value::Null, Value::Undefined]);
        assert_eq!(decode_one(&strict), Ok(s.clone()));
        assert_eq!(enc(&s), strict);

        // An empty property name that is not followed by 0x09 is a property.
        let odd = b"\x03\x00\x00\x05\x00\x00\x09";
        assert_eq!(decode_one(odd), Ok(Value::object([("", Value::Null)])));
        assert_eq!(enc(&Value::object([("", Value::Null)])), odd);
    }

    #[test]
    fn reserved_and_stray_markers_are_errors() {
        for (m, name) in [(0x04, "movieclip"), (0x0E, "recordset")] {
            let err = decode_all(&[0x05, m]).unwrap_err();
            assert_eq!(
                err,
                Amf0Error::Unsupported {
                    offset: 1,
                    marker: m,
                    name
                }
            );
            assert!(err.to_string().contains(name), "{err}");
        }
        assert_eq!(
            decode_all(&[0x09]),
            Err(Amf0Error::StrayObjectEnd { offset: 0 })
        );
        let err = decode_all(&[0x05, 0x12]).unwrap_err();
        assert_eq!(
            err,
            Amf0Error::UnknownMarker {
                offset: 1,
                marker: 0x12
            }
        );
        assert!(err.to_string().contains("0x12"), "{err}");
    }

    #[test]
    fn references_are_checked_against_complex_values_seen() {
        // [ {}, <ref 0>, <ref 1> ]: the strict array is complex value 0, the object 1.
        let ok = [0x0A, 0, 0, 0, 3, 0x03, 0, 0, 9, 0x07, 0, 0, 0x07, 0, 1];
        let v = decode_one(&ok).unwrap();
        assert_eq!(
            v,
            Value::strict_array([
                Value::Object(vec![]),
                Value::Reference(0),
                Value::Reference(1)
            ])
        );
        assert_eq!(enc(&v), ok);
        let bad = [0x0A, 0, 0, 0, 2, 0x03, 0, 0, 9, 0x07, 0, 2];
        assert_eq!(
            decode_one(&bad),
            Err(Amf0Error::BadReference {
                offset: 9,
                index: 2,
                known: 2
            })
        );
        assert_eq!(
            decode_all(&[0x07, 0xFF, 0xFF]),
            Err(Amf0Error::BadReference {
                offset: 0,
                index: 0xFFFF,
                known: 0
            })
        );
    }

    #[test]
    fn avmplus_switch_is_not_sticky() {
        // 0x11 + AMF3 string "ab", then an AMF0 number: 0x00 must not be AMF3 undefined.
        let mut bytes = vec![0x11, 0x06, 0x05, b'a', b'b'];
        bytes.extend_from_slice(&[0x00, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0]);
        // A second AMF3 value gets a fresh context: "ab" again is a literal, not ref 0.
        bytes.extend_from_slice(&[0x11, 0x06, 0x05, b'a', b'b']);
        let values = vec![
            Value::Amf3("ab".into()),
            1.0.into(),
            Value::Amf3("ab".into()),
        ];
        assert_eq!(decode_all(&bytes), Ok(values.clone()));
        assert_eq!(encode_all(&values), bytes);
        assert_eq!(values[0].as_str(), Some("ab"));
        // AMF3 errors surface as they are, with offsets into the AMF0 buffer.
        assert_eq!(
            decode_all(&[0x05, 0x11, 0x06, 0x02]),
            Err(Amf0Error::Amf3(Amf3Error::BadStringRef {
                offset: 3,
                index: 1,
                known: 0
            }))
        );
    }

    #[test]
    fn long_strings_switch_marker_at_65536_bytes() {
        let short = "x".repeat(65_535);
        let bytes = enc(&short.clone().into());
        assert_eq!(bytes[..3], [0x02, 0xFF, 0xFF]);
        assert_eq!(decode_one(&bytes), Ok(short.into()));
        let long = "x".repeat(65_536);
        let bytes = enc(&long.clone().into());
        assert_eq!(bytes[..5], [0x0C, 0x00, 0x01, 0x00, 0x00]);
        assert_eq!(decode_one(&bytes), Ok(long.into()));
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        assert_eq!(
            decode_one(&[0x02, 0x00, 0x03, b'a', 0xC3, 0x28]),
            Ok("a\u{FFFD}(".into())
        );
        assert_eq!(
            decode_one(b"\x03\x00\x01\xFF\x05\x00\x00\x09"),
            Ok(Value::object([("\u{FFFD}", Value::Null)]))
        );
    }

    #[test]
    fn megabyte_of_nesting_hits_the_depth_limit() {
        let cases: [&[u8]; 4] = [
            b"\x03\x00\x01a",
            b"\x0A\x00\x00\x00\x01",
            b"\x08\x00\x00\x00\x01\x00\x01a",
            b"\x11\x09\x03\x01",
        ];
        for p in cases {
            let bytes = p.repeat((1 << 20) / p.len());
            let err = decode_all(&bytes).unwrap_err();
            let limit = match err {
                Amf0Error::TooDeep { limit, .. }
                | Amf0Error::Amf3(Amf3Error::TooDeep { limit, .. }) => limit,
                _ => panic!("{p:02x?}: {err}"),
            };
            assert!(limit <= 64, "{p:02x?}: {err}");
            let limits = Limits {
                max_depth: usize::MAX,
                max_values: usize::MAX,
            };
            let err = Decoder::with_limits(&bytes, limits).decode().unwrap_err();
            assert!(err.to_string().contains("deeper than"), "{p:02x?}: {err}");
        }
        // A megabyte of bare object markers: each is an object whose first key is 771 bytes
        // long, whose value is the next object.
        assert!(matches!(
            decode_all(&[0x03; 1 << 20]),
            Err(Amf0Error::TooDeep { limit: 64, .. })
        ));
    }

    #[test]
    fn huge_declared_lengths_in_short_input() {
        assert_eq!(
            decode_all(&[0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x05]),
            Err(Amf0Error::Truncated {
                offset: 6,
                what: "value marker",
                needed: 1,
                remaining: 0
            })
        );
        let err = decode_all(&[0x0C, 0xFF, 0xFF, 0xFF, 0xFF, b'a']).unwrap_err();
        assert_eq!(
            err,
            Amf0Error::Truncated {
                offset: 5,
                what: "long string",
                needed: 0xFFFF_FFFF,
                remaining: 1
            }
        );
        assert!(err.to_string().contains("4294967295"), "{err}");
        assert!(matches!(
            decode_all(&[0x0F, 0xFF, 0xFF, 0xFF, 0xFF]),
            Err(Amf0Error::Truncated {
                needed: 0xFFFF_FFFF,
                ..
            })
        ));
    }

    #[test]
    fn too_many_values() {
        let v = Value::strict_array(vec![Value::Null; 9]);
        let bytes = enc(&v);
        let limits = Limits {
            max_depth: 4,
            max_values: 9,
        };
        assert_eq!(
            Decoder::with_limits(&bytes, limits).decode(),
            Err(Amf0Error::TooManyValues {
                offset: bytes.len() - 1,
                limit: 9
            })
        );
        let limits = Limits {
            max_values: 10,
            ..limits
        };
        assert_eq!(Decoder::with_limits(&bytes, limits).decode(), Ok(v));
        // The AMF3 part draws on the same budget.
        let bytes = [0x0A, 0, 0, 0, 1, 0x11, 0x09, 0x05, 0x01, 0x01, 0x01];
        let limits = Limits {
            max_depth: 4,
            max_values: 3,
        };
        assert!(matches!(
            Decoder::with_limits(&bytes, limits).decode(),
            Err(Amf0Error::Amf3(Amf3Error::TooManyValues { limit: 2, .. }))
        ));
        let limits = Limits {
            max_values: 4,
            ..limits
        };
        assert!(Decoder::with_limits(&bytes, limits).decode().is_ok());
    }

    #[test]
    fn truncation_at_every_byte_is_an_error() {
        let mut bytes = connect_bytes();
        bytes.extend_from_slice(&[0x11, 0x09, 0x03, 0x03, b'k', 0x04, 0x07, 0x01, 0x06, 0x00]);
        let full = Value::StrictArray(decode_all(&bytes).unwrap());
        let one = enc(&full);
        assert_eq!(decode_one(&one), Ok(full));
        for n in 0..one.len() {
            let r = Decoder::new(&one[..n]).decode();
            assert!(
                matches!(
                    r,
                    Err(Amf0Error::Truncated { .. } | Amf0Error::Amf3(Amf3Error::Truncated { .. }))
                ),
                "prefix {n}: {r:?}"
            );
        }
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let double = || any::<f64>().prop_filter("NaN never equals itself", |d| !d.is_nan());
        let leaf = prop_oneof![
            double().prop_map(Value::Number),
            any::<bool>().prop_map(Value::Boolean),
            "\\PC{0,8}".prop_map(Value::String),
            Just(Value::Null),
            Just(Value::Undefined),
            (double(), any::<i16>())
                .prop_map(|(millis, time_zone)| Value::Date { millis, time_zone }),
            "\\PC{0,8}".prop_map(Value::XmlDocument),
            amf3::tests::arb_value().prop_map(Value::Amf3),
        ];
        leaf.prop_recursive(4, 48, 5, |inner| {
            let props = move |inner| prop::collection::vec(("\\PC{0,4}", inner), 0..4);
            prop_oneof![
                props(inner.clone()).prop_map(Value::Object),
                props(inner.clone()).prop_map(Value::EcmaArray),
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::StrictArray),
                ("\\PC{0,4}", props(inner)).prop_map(|(class_name, properties)| {
                    Value::TypedObject {
                        class_name,
                        properties,
                    }
                }),
            ]
        })
    }

    proptest! {
        #[test]
        fn round_trip(values in prop::collection::vec(arb_value(), 0..4)) {
            let bytes = encode_all(&values);
            let back = decode_all(&bytes).unwrap();
            prop_assert_eq!(&back, &values);
            prop_assert_eq!(encode_all(&back), bytes);
            let body = encode_command_payload(17, &values);
            prop_assert_eq!(decode_command_payload(17, &body).unwrap(), values);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_command_payload(17, &bytes);
            let _ = decode_all(&bytes);
        }
    }
}
