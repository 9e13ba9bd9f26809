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
