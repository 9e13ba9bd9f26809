//! AMF0 values and codec (protocol-facts §6.1).
//!
//! STUB: the `Value` type is the agreed interface; the codec is filled in by the AMF work.

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
