//! AMF3 values and codec (protocol-facts §6.2).
//!
//! One [`Decoder`] or [`Encoder`] is one AMF3 context: its string, object and traits tables
//! live as long as it does. Inside RTMP every 0x11-prefixed value gets a fresh context (the
//! switch is not sticky), which is what [`crate::amf0`] does.
//!
//! Decoding resolves every reference, so the result is a plain tree. That has three
//! consequences the decoder guards against:
//! - a reference to an object that is still being decoded (a loop) has no tree form and is an
//!   error;
//! - copying a referenced value can blow a small input up into a huge tree, so copies are
//!   charged against [`Limits::max_values`] by their size (one value per node plus one per
//!   64 bytes of text or binary payload) and against [`Limits::max_depth`] by their height;
//! - a referenced value is copied out of the tree built so far (found by its position), not
//!   kept on the side, so nested complex values are not stored once per nesting level.
//!
//! Externalizable objects carry a body whose length only their class knows. The decoder
//! supports the two Flex classes whose body is a single AMF3 value,
//! [`ARRAY_COLLECTION`] and [`OBJECT_PROXY`]: the body value becomes the only sealed member
//! (named `source` and `object`, after their ActionScript properties) and `externalized` is
//! `Some(vec![])` to mark the object as externalizable. Any other class is an error naming it.
//!
//! The encoder emits string and traits references for repeats but never object references
//! (values have no identity; writing a repeat in full is always valid AMF3).

use std::collections::HashMap;
use std::rc::Rc;

use bytes::{BufMut, Bytes, BytesMut};
use thiserror::Error;

pub use crate::amf0::Limits;

/// Class name of the Flex `ArrayCollection`, whose externalized body is one AMF3 value.
pub const ARRAY_COLLECTION: &str = "flex.messaging.io.ArrayCollection";
/// Class name of the Flex `ObjectProxy`, whose externalized body is one AMF3 value.
pub const OBJECT_PROXY: &str = "flex.messaging.io.ObjectProxy";

const U29_MAX: u32 = 0x1FFF_FFFF;
/// Largest length or count a `(n << 1) | 1` header can carry.
const INLINE_MAX: usize = (U29_MAX >> 1) as usize;
const INT_MIN: i32 = -(1 << 28);
const INT_MAX: i32 = (1 << 28) - 1;
/// Payload bytes copied by reference that cost as much as one value.
const BYTES_PER_VALUE: usize = 64;
const NO_PARENT: usize = usize::MAX;

mod marker {
    pub const UNDEFINED: u8 = 0x00;
    pub const NULL: u8 = 0x01;
    pub const FALSE: u8 = 0x02;
    pub const TRUE: u8 = 0x03;
    pub const INTEGER: u8 = 0x04;
    pub const DOUBLE: u8 = 0x05;
    pub const STRING: u8 = 0x06;
    pub const XML_DOC: u8 = 0x07;
    pub const DATE: u8 = 0x08;
    pub const ARRAY: u8 = 0x09;
    pub const OBJECT: u8 = 0x0A;
    pub const XML: u8 = 0x0B;
    pub const BYTE_ARRAY: u8 = 0x0C;
    pub const VECTOR_INT: u8 = 0x0D;
    pub const VECTOR_UINT: u8 = 0x0E;
    pub const VECTOR_DOUBLE: u8 = 0x0F;
    pub const VECTOR_OBJECT: u8 = 0x10;
    pub const DICTIONARY: u8 = 0x11;
}

/// An AMF3 value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Undefined,
    Null,
    Boolean(bool),
    /// Marker 0x04 (signed 29-bit).
    Integer(i32),
    Double(f64),
    String(String),
    XmlDocument(String),
    Date(f64),
    /// Associative part in wire order, then the dense part.
    Array {
        assoc: Vec<(String, Value)>,
        dense: Vec<Value>,
    },
    Object(Box<Object>),
    Xml(String),
    ByteArray(Vec<u8>),
    VectorInt { fixed: bool, items: Vec<i32> },
    VectorUint { fixed: bool, items: Vec<u32> },
    VectorDouble { fixed: bool, items: Vec<f64> },
    VectorObject {
        fixed: bool,
        type_name: String,
        items: Vec<Value>,
    },
    Dictionary { weak_keys: bool, entries: Vec<(Value, Value)> },
}

/// An AMF3 object: traits plus values.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    /// Empty for anonymous objects.
    pub class_name: String,
    pub dynamic: bool,
    /// Sealed members in trait order.
    pub sealed: Vec<(String, Value)>,
    /// Dynamic members in wire order.
    pub dynamic_members: Vec<(String, Value)>,
    /// Externalizable objects carry opaque bytes whose layout only the class knows. The
    /// decoder cannot know their length; see the module docs for what is supported.
    pub externalized: Option<Vec<u8>>,
}

impl Object {
    /// An anonymous dynamic object with these members (the usual ActionScript `{...}`).
    pub fn anonymous<K: Into<String>>(members: impl IntoIterator<Item = (K, Value)>) -> Self {
        Object {
            class_name: String::new(),
            dynamic: true,
            sealed: Vec::new(),
            dynamic_members: members.into_iter().map(|(k, v)| (k.into(), v)).collect(),
            externalized: None,
        }
    }

    /// A Flex `ArrayCollection` wrapping `source` (normally an array).
    pub fn array_collection(source: Value) -> Self {
        Self::flex(ARRAY_COLLECTION, source)
    }

    /// A Flex `ObjectProxy` wrapping `object`.
    pub fn object_proxy(object: Value) -> Self {
        Self::flex(OBJECT_PROXY, object)
    }

    fn flex(class_name: &str, body: Value) -> Self {
        Object {
            class_name: class_name.to_owned(),
            dynamic: false,
            sealed: vec![(flex_member(class_name).unwrap_or_default().to_owned(), body)],
            dynamic_members: Vec::new(),
            externalized: Some(Vec::new()),
        }
    }

    /// The first sealed, then dynamic, member called `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.sealed
            .iter()
            .chain(&self.dynamic_members)
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }
}

/// The sealed member name standing for the body of a supported externalizable class.
fn flex_member(class_name: &str) -> Option<&'static str> {
    match class_name {
        ARRAY_COLLECTION => Some("source"),
        OBJECT_PROXY => Some("object"),
        _ => None,
    }
}

impl Value {
    /// The text of a `String`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// An `Integer` or `Double` as `f64`.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Integer(i) => Some(f64::from(i)),
            Value::Double(d) => Some(d),
            _ => None,
        }
    }

    /// The value of a `Boolean`.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Boolean(b) => Some(b),
            _ => None,
        }
    }

    /// A member of an object (sealed first, then dynamic) or a key of an array's associative
    /// part.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Object(o) => o.get(key),
            Value::Array { assoc, .. } => assoc.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// An anonymous dynamic object, see [`Object::anonymous`].
    pub fn object<K: Into<String>>(members: impl IntoIterator<Item = (K, Value)>) -> Self {
        Value::Object(Box::new(Object::anonymous(members)))
    }
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
    fn from(d: f64) -> Self {
        Value::Double(d)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Boolean(b)
    }
}

/// Integers outside the 29-bit range are still accepted here; the encoder writes them as
/// doubles.
impl From<i32> for Value {
    fn from(i: i32) -> Self {
        Value::Integer(i)
    }
}

impl From<Object> for Value {
    fn from(o: Object) -> Self {
        Value::Object(Box::new(o))
    }
}

/// Why AMF3 input could not be decoded. Offsets are from the start of the decoder's buffer.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum Amf3Error {
    #[error(
        "AMF3 input truncated at offset {offset}: {what} needs {needed} bytes, {remaining} left"
    )]
    Truncated {
        offset: usize,
        what: &'static str,
        needed: u64,
        remaining: usize,
    },
    #[error("AMF3 marker {marker:#04x} at offset {offset} is not a known marker (0x00-0x11)")]
    UnknownMarker { offset: usize, marker: u8 },
    #[error(
        "AMF3 string reference {index} at offset {offset}, but the string table has {known} entries"
    )]
    BadStringRef {
        offset: usize,
        index: usize,
        known: usize,
    },
    #[error(
        "AMF3 object reference {index} at offset {offset}, but the object table has {known} entries"
    )]
    BadObjectRef {
        offset: usize,
        index: usize,
        known: usize,
    },
    #[error(
        "AMF3 traits reference {index} at offset {offset}, but the traits table has {known} entries"
    )]
    BadTraitsRef {
        offset: usize,
        index: usize,
        known: usize,
    },
    #[error(
        "AMF3 object reference {index} at offset {offset} points to an object still being decoded; a reference loop has no tree form"
    )]
    ReferenceLoop { offset: usize, index: usize },
    #[error(
        "AMF3 externalizable class {class_name:?} at offset {offset} is not supported: only the class knows its body length (supported: {ARRAY_COLLECTION}, {OBJECT_PROXY})"
    )]
    UnsupportedExternalizable { offset: usize, class_name: String },
    #[error("AMF3 value at offset {offset} nests deeper than the limit of {limit} levels")]
    TooDeep { offset: usize, limit: usize },
    #[error("AMF3 input at offset {offset} expands to more than the limit of {limit} values")]
    TooManyValues { offset: usize, limit: usize },
    #[error("{count} bytes left over after the AMF3 value ending at offset {offset}")]
    TrailingBytes { offset: usize, count: usize },
}

type Result<T> = std::result::Result<T, Amf3Error>;

/// Traits as read from the wire (or found by reference).
#[derive(Debug)]
struct Traits {
    class_name: String,
    dynamic: bool,
    externalizable: bool,
    members: Vec<String>,
}

/// An entry of the object table: where the value sits in the decoded tree.
#[derive(Debug, Clone, Copy)]
struct Slot {
    path: usize,
    done: bool,
}

/// An object reference waiting to be filled in once the tree is complete.
#[derive(Debug)]
struct Fixup {
    path: usize,
    slot: usize,
    offset: usize,
}

/// Decodes AMF3 values from a byte slice. All values decoded by one `Decoder` share one
/// context (reference tables). After an error the decoder's tables are in an undefined state:
/// discard it.
#[derive(Debug)]
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    limits: Limits,
    strings: Vec<String>,
    traits: Vec<Rc<Traits>>,
    slots: Vec<Slot>,
    /// Tree positions as (parent, child index); a root entry is (`NO_PARENT`, root number).
    paths: Vec<(usize, usize)>,
    /// Values returned by earlier `decode` calls, kept for references into them.
    roots: Vec<Value>,
    fixups: Vec<Fixup>,
    /// Values left in the current call's budget.
    budget: usize,
    /// Path node of the value being decoded.
    cur: usize,
}

impl<'a> Decoder<'a> {
    /// A decoder over `buf` with the default [`Limits`].
    pub fn new(buf: &'a [u8]) -> Self {
        Self::with_limits(buf, Limits::default())
    }

    /// A decoder over `buf` with explicit limits (`max_depth` is capped, see [`Limits`]).
    pub fn with_limits(buf: &'a [u8], limits: Limits) -> Self {
        Self::at(buf, 0, limits)
    }

    pub(crate) fn at(buf: &'a [u8], pos: usize, limits: Limits) -> Self {
        Decoder {
            buf,
            pos,
            limits: limits.capped(),
            strings: Vec::new(),
            traits: Vec::new(),
            slots: Vec::new(),
            paths: Vec::new(),
            roots: Vec::new(),
            fixups: Vec::new(),
            budget: 0,
            cur: NO_PARENT,
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

    /// Decodes the next value, resolving every reference.
    pub fn decode(&mut self) -> Result<Value> {
        let slots_before = self.slots.len();
        let (value, _) = self.decode_counted()?;
        // Later values may refer to complex values inside this one; keep it only then.
        self.roots.push(if slots_before < self.slots.len() {
            value.clone()
        } else {
            Value::Undefined
        });
        Ok(value)
    }

    /// Decodes one value and reports how much of the values budget it used; the value is not
    /// kept for later references (the caller is done with this context).
    pub(crate) fn decode_counted(&mut self) -> Result<(Value, usize)> {
        self.budget = self.limits.max_values;
        self.fixups.clear();
        self.paths.push((NO_PARENT, self.roots.len()));
        self.cur = self.paths.len() - 1;
        let mut value = self.value(1)?;
        self.resolve(&mut value)?;
        Ok((value, self.limits.max_values - self.budget))
    }

    /// The root number and the child indices leading from it to `node`.
    fn path_of(&self, mut node: usize) -> (usize, Vec<usize>) {
        let mut path = Vec::new();
        loop {
            let (parent, index) = self.paths[node];
            if parent == NO_PARENT {
                path.reverse();
                return (index, path);
            }
            path.push(index);
            node = parent;
        }
    }

    fn charge(&mut self, values: usize, offset: usize) -> Result<()> {
        self.budget = self
            .budget
            .checked_sub(values)
            .ok_or(Amf3Error::TooManyValues {
                offset,
                limit: self.limits.max_values,
            })?;
        Ok(())
    }

    fn take(&mut self, n: u64, what: &'static str) -> Result<&'a [u8]> {
        let remaining = self.buf.len() - self.pos;
        if n > remaining as u64 {
            return Err(Amf3Error::Truncated {
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

    fn u8(&mut self, what: &'static str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    fn f64(&mut self, what: &'static str) -> Result<f64> {
        let b = self.take(8, what)?;
        Ok(f64::from_be_bytes(b.try_into().expect("8 bytes")))
    }

    fn u29(&mut self) -> Result<u32> {
        let mut v = 0u32;
        for _ in 0..3 {
            let b = self.u8("U29")?;
            v = (v << 7) | u32::from(b & 0x7F);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Ok((v << 8) | u32::from(self.u8("U29")?))
    }

    /// A UTF-8-vr string: literal (added to the table when non-empty) or table reference.
    fn string(&mut self) -> Result<String> {
        let offset = self.pos;
        let h = self.u29()? as usize;
        if h & 1 == 0 {
            let index = h >> 1;
            let s = self.strings.get(index).ok_or(Amf3Error::BadStringRef {
                offset,
                index,
                known: self.strings.len(),
            })?;
            let cost = s.len() / BYTES_PER_VALUE;
            let s = s.clone();
            self.charge(cost, offset)?;
            return Ok(s);
        }
        let bytes = self.take((h >> 1) as u64, "string")?;
        let s = String::from_utf8_lossy(bytes).into_owned();
        if !s.is_empty() {
            self.strings.push(s.clone());
        }
        Ok(s)
    }

    fn new_slot(&mut self) -> usize {
        self.slots.push(Slot {
            path: self.cur,
            done: false,
        });
        self.slots.len() - 1
    }

    /// Records a reference to be filled in later and returns its placeholder.
    fn object_ref(&mut self, index: usize, offset: usize) -> Result<Value> {
        match self.slots.get(index) {
            None => Err(Amf3Error::BadObjectRef {
                offset,
                index,
                known: self.slots.len(),
            }),
            Some(s) if !s.done => Err(Amf3Error::ReferenceLoop { offset, index }),
            Some(_) => {
                self.fixups.push(Fixup {
                    path: self.cur,
                    slot: index,
                    offset,
                });
                Ok(Value::Undefined)
            }
        }
    }

    /// Decodes child number `index` of the current value.
    fn child(&mut self, index: usize, depth: usize) -> Result<Value> {
        self.paths.push((self.cur, index));
        let parent = self.cur;
        self.cur = self.paths.len() - 1;
        let v = self.value(depth);
        self.cur = parent;
        v
    }

    /// At most as many elements as the remaining input could hold, so a declared count cannot
    /// make us allocate more than the input justifies.
    fn capacity(&self, declared: usize, min_bytes_each: usize) -> usize {
        declared.min((self.buf.len() - self.pos) / min_bytes_each)
    }

    /// Reads a complex value's header: `Err` carries the resolved reference placeholder,
    /// `Ok` the inline length or count.
    fn inline_header(&mut self, offset: usize) -> Result<std::result::Result<usize, Value>> {
        let h = self.u29()? as usize;
        if h & 1 == 0 {
            return Ok(Err(self.object_ref(h >> 1, offset)?));
        }
        Ok(Ok(h >> 1))
    }

    // The complex cases live in their own functions: one big match would make every level
    // of nesting pay for the stack space of all of them.
    fn value(&mut self, depth: usize) -> Result<Value> {
        let offset = self.pos;
        if depth > self.limits.max_depth {
            return Err(Amf3Error::TooDeep {
                offset,
                limit: self.limits.max_depth,
            });
        }
        self.charge(1, offset)?;
        let m = self.u8("value marker")?;
        match m {
            marker::UNDEFINED => Ok(Value::Undefined),
            marker::NULL => Ok(Value::Null),
            marker::FALSE => Ok(Value::Boolean(false)),
            marker::TRUE => Ok(Value::Boolean(true)),
            marker::INTEGER => {
                let u = self.u29()?;
                // Sign-extend bit 28.
                Ok(Value::Integer(((u << 3) as i32) >> 3))
            }
            marker::DOUBLE => Ok(Value::Double(self.f64("double")?)),
            marker::STRING => Ok(Value::String(self.string()?)),
            marker::XML_DOC | marker::XML | marker::BYTE_ARRAY | marker::DATE => {
                self.leaf_object(m, offset)
            }
            marker::ARRAY => self.array(offset, depth),
            marker::OBJECT => self.object(offset, depth),
            marker::VECTOR_INT | marker::VECTOR_UINT | marker::VECTOR_DOUBLE => {
                self.number_vector(m, offset)
            }
            marker::VECTOR_OBJECT => self.object_vector(offset, depth),
            marker::DICTIONARY => self.dictionary(offset, depth),
            marker => Err(Amf3Error::UnknownMarker { offset, marker }),
        }
    }

    /// XMLDocument, XML, ByteArray and Date: in the object table, but without children.
    #[inline(never)]
    fn leaf_object(&mut self, m: u8, offset: usize) -> Result<Value> {
        let len = match self.inline_header(offset)? {
            Ok(len) => len,
            Err(placeholder) => return Ok(placeholder),
        };
        let slot = self.new_slot();
        let v = if m == marker::DATE {
            // The date header's other bits are unused.
            Value::Date(self.f64("date")?)
        } else {
            let bytes = self.take(len as u64, "XML or ByteArray body")?;
            match m {
                marker::BYTE_ARRAY => Value::ByteArray(bytes.to_vec()),
                marker::XML => Value::Xml(String::from_utf8_lossy(bytes).into_owned()),
                _ => Value::XmlDocument(String::from_utf8_lossy(bytes).into_owned()),
            }
        };
        self.slots[slot].done = true;
        Ok(v)
    }

    #[inline(never)]
    fn array(&mut self, offset: usize, depth: usize) -> Result<Value> {
        let count = match self.inline_header(offset)? {
            Ok(count) => count,
            Err(placeholder) => return Ok(placeholder),
        };
        let slot = self.new_slot();
        let mut assoc = Vec::new();
        loop {
            let key = self.string()?;
            if key.is_empty() {
                break;
            }
            let v = self.child(assoc.len(), depth + 1)?;
            assoc.push((key, v));
        }
        let mut dense = Vec::with_capacity(self.capacity(count, 1));
        for i in 0..count {
            dense.push(self.child(assoc.len() + i, depth + 1)?);
        }
        self.slots[slot].done = true;
        Ok(Value::Array { assoc, dense })
    }

    #[inline(never)]
    fn number_vector(&mut self, m: u8, offset: usize) -> Result<Value> {
        let count = match self.inline_header(offset)? {
            Ok(count) => count as u64,
            Err(placeholder) => return Ok(placeholder),
        };
        let slot = self.new_slot();
        let fixed = self.u8("vector fixed flag")? != 0;
        let v = if m == marker::VECTOR_DOUBLE {
            let body = self.take(count * 8, "Vector<Number> items")?;
            let items = body
                .chunks_exact(8)
                .map(|c| f64::from_be_bytes(c.try_into().expect("8 bytes")))
                .collect();
            Value::VectorDouble { fixed, items }
        } else {
            let body = self.take(count * 4, "Vector<int> or Vector<uint> items")?;
            let words = body
                .chunks_exact(4)
                .map(|c| u32::from_be_bytes(c.try_into().expect("4 bytes")));
            if m == marker::VECTOR_INT {
                Value::VectorInt {
                    fixed,
                    items: words.map(|w| w as i32).collect(),
                }
            } else {
                Value::VectorUint {
                    fixed,
                    items: words.collect(),
                }
            }
        };
        self.slots[slot].done = true;
        Ok(v)
    }

    #[inline(never)]
    fn object_vector(&mut self, offset: usize, depth: usize) -> Result<Value> {
        let count = match self.inline_header(offset)? {
            Ok(count) => count,
            Err(placeholder) => return Ok(placeholder),
        };
        let slot = self.new_slot();
        let fixed = self.u8("vector fixed flag")? != 0;
        let type_name = self.string()?;
        let mut items = Vec::with_capacity(self.capacity(count, 1));
        for i in 0..count {
            items.push(self.child(i, depth + 1)?);
        }
        self.slots[slot].done = true;
        Ok(Value::VectorObject {
            fixed,
            type_name,
            items,
        })
    }

    #[inline(never)]
    fn dictionary(&mut self, offset: usize, depth: usize) -> Result<Value> {
        let count = match self.inline_header(offset)? {
            Ok(count) => count,
            Err(placeholder) => return Ok(placeholder),
        };
        let slot = self.new_slot();
        let weak_keys = self.u8("dictionary weak-keys flag")? != 0;
        let mut entries = Vec::with_capacity(self.capacity(count, 2));
        for i in 0..count {
            let k = self.child(2 * i, depth + 1)?;
            let v = self.child(2 * i + 1, depth + 1)?;
            entries.push((k, v));
        }
        self.slots[slot].done = true;
        Ok(Value::Dictionary { weak_keys, entries })
    }

    #[inline(never)]
    fn object(&mut self, offset: usize, depth: usize) -> Result<Value> {
        let h = self.u29()? as usize;
        if h & 1 == 0 {
            return self.object_ref(h >> 1, offset);
        }
        let slot = self.new_slot();
        let traits = self.traits(h, offset)?;
        let object = if traits.externalizable {
            let Some(member) = flex_member(&traits.class_name) else {
                return Err(Amf3Error::UnsupportedExternalizable {
                    offset,
                    class_name: traits.class_name.clone(),
                });
            };
            let body = self.child(0, depth + 1)?;
            Object {
                class_name: traits.class_name.clone(),
                dynamic: false,
                sealed: vec![(member.to_owned(), body)],
                dynamic_members: Vec::new(),
                externalized: Some(Vec::new()),
            }
        } else {
            let mut sealed = Vec::with_capacity(self.capacity(traits.members.len(), 1));
            for (i, name) in traits.members.iter().enumerate() {
                // A referenced trait copies its names once per object.
                self.charge(name.len() / BYTES_PER_VALUE, offset)?;
                let v = self.child(i, depth + 1)?;
                sealed.push((name.clone(), v));
            }
            let dynamic_members = if traits.dynamic {
                self.dynamic_members(sealed.len(), depth)?
            } else {
                Vec::new()
            };
            Object {
                class_name: traits.class_name.clone(),
                dynamic: traits.dynamic,
                sealed,
                dynamic_members,
                externalized: None,
            }
        };
        self.slots[slot].done = true;
        Ok(Value::Object(Box::new(object)))
    }

    /// The traits of an object whose header `h` is not an object reference.
    #[inline(never)]
    fn traits(&mut self, h: usize, offset: usize) -> Result<Rc<Traits>> {
        if h & 2 == 0 {
            let index = h >> 2;
            return self
                .traits
                .get(index)
                .cloned()
                .ok_or(Amf3Error::BadTraitsRef {
                    offset,
                    index,
                    known: self.traits.len(),
                });
        }
        let t = if h & 4 != 0 {
            Traits {
                class_name: self.string()?,
                dynamic: false,
                externalizable: true,
                members: Vec::new(),
            }
        } else {
            let count = h >> 4;
            let class_name = self.string()?;
            let mut members = Vec::with_capacity(self.capacity(count, 1));
            for _ in 0..count {
                members.push(self.string()?);
            }
            Traits {
                class_name,
                dynamic: h & 8 != 0,
                externalizable: false,
                members,
            }
        };
        let t = Rc::new(t);
        self.traits.push(t.clone());
        Ok(t)
    }

    /// Dynamic members up to the empty-string end; their child numbers start at `first`.
    #[inline(never)]
    fn dynamic_members(&mut self, first: usize, depth: usize) -> Result<Vec<(String, Value)>> {
        let mut members = Vec::new();
        loop {
            let key = self.string()?;
            if key.is_empty() {
                return Ok(members);
            }
            let v = self.child(first + members.len(), depth + 1)?;
            members.push((key, v));
        }
    }

    /// Replaces the placeholders of this call's object references with copies, in wire
    /// order: everything a referenced value itself refers to appeared (and was filled in)
    /// before it was complete, so each copy is taken from a finished subtree.
    fn resolve(&mut self, root: &mut Value) -> Result<()> {
        let current = self.roots.len();
        for f in std::mem::take(&mut self.fixups) {
            let (src_root, src_path) = self.path_of(self.slots[f.slot].path);
            let (_, dst_path) = self.path_of(f.path);
            let src = if src_root == current {
                at(root, &src_path)
            } else {
                self.roots.get(src_root).and_then(|r| at(r, &src_path))
            };
            let src = src.ok_or(Amf3Error::BadObjectRef {
                offset: f.offset,
                index: f.slot,
                known: self.slots.len(),
            })?;
            let (size, height) = measure(src, self.budget);
            if size > self.budget {
                return Err(Amf3Error::TooManyValues {
                    offset: f.offset,
                    limit: self.limits.max_values,
                });
            }
            if dst_path.len() + height > self.limits.max_depth {
                return Err(Amf3Error::TooDeep {
                    offset: f.offset,
                    limit: self.limits.max_depth,
                });
            }
            let copy = src.clone();
            self.budget -= size;
            if let Some(slot) = at_mut(root, &dst_path) {
                *slot = copy;
            }
        }
        Ok(())
    }
}

/// Child `i` in the numbering the decoder uses for paths.
fn nth(v: &Value, i: usize) -> Option<&Value> {
    match v {
        Value::Array { assoc, dense } => match assoc.get(i) {
            Some((_, v)) => Some(v),
            None => dense.get(i - assoc.len()),
        },
        Value::Object(o) => match o.sealed.get(i) {
            Some((_, v)) => Some(v),
            None => o.dynamic_members.get(i - o.sealed.len()).map(|(_, v)| v),
        },
        Value::VectorObject { items, .. } => items.get(i),
        Value::Dictionary { entries, .. } => entries
            .get(i / 2)
            .map(|(k, v)| if i.is_multiple_of(2) { k } else { v }),
        _ => None,
    }
}

fn nth_mut(v: &mut Value, i: usize) -> Option<&mut Value> {
    match v {
        Value::Array { assoc, dense } => {
            let n = assoc.len();
            match assoc.get_mut(i) {
                Some((_, v)) => Some(v),
                None => dense.get_mut(i - n),
            }
        }
        Value::Object(o) => {
            let n = o.sealed.len();
            match o.sealed.get_mut(i) {
                Some((_, v)) => Some(v),
                None => o.dynamic_members.get_mut(i - n).map(|(_, v)| v),
            }
        }
        Value::VectorObject { items, .. } => items.get_mut(i),
        Value::Dictionary { entries, .. } => entries
            .get_mut(i / 2)
            .map(|(k, v)| if i.is_multiple_of(2) { k } else { v }),
        _ => None,
    }
}

fn at<'v>(mut v: &'v Value, path: &[usize]) -> Option<&'v Value> {
    for &i in path {
        v = nth(v, i)?;
    }
    Some(v)
}

fn at_mut<'v>(mut v: &'v mut Value, path: &[usize]) -> Option<&'v mut Value> {
    for &i in path {
        v = nth_mut(v, i)?;
    }
    Some(v)
}

/// Size in budget units (see the module docs) and height of `v`. Stops counting once the
/// size passes `limit`, so measuring costs no more than the budget allows copying.
fn measure(v: &Value, limit: usize) -> (usize, usize) {
    fn text(s: &str) -> usize {
        s.len() / BYTES_PER_VALUE
    }
    fn go(v: &Value, limit: usize, size: &mut usize) -> usize {
        *size += 1;
        if *size > limit {
            return 1;
        }
        let mut height = 0;
        let mut sub = |c: &Value, size: &mut usize| height = height.max(go(c, limit, size));
        match v {
            Value::String(s) | Value::XmlDocument(s) | Value::Xml(s) => *size += text(s),
            Value::ByteArray(b) => *size += b.len() / BYTES_PER_VALUE,
            Value::VectorInt { items, .. } => *size += items.len() * 4 / BYTES_PER_VALUE,
            Value::VectorUint { items, .. } => *size += items.len() * 4 / BYTES_PER_VALUE,
            Value::VectorDouble { items, .. } => *size += items.len() * 8 / BYTES_PER_VALUE,
            Value::Array { assoc, dense } => {
                for (k, c) in assoc {
                    *size += text(k);
                    sub(c, size);
                }
                for c in dense {
                    sub(c, size);
                }
            }
            Value::Object(o) => {
                *size += text(&o.class_name);
                for (k, c) in o.sealed.iter().chain(&o.dynamic_members) {
                    *size += text(k);
                    sub(c, size);
                }
            }
            Value::VectorObject {
                type_name, items, ..
            } => {
                *size += text(type_name);
                for c in items {
                    sub(c, size);
                }
            }
            Value::Dictionary { entries, .. } => {
                for (k, c) in entries {
                    sub(k, size);
                    sub(c, size);
                }
            }
            _ => {}
        }
        height + 1
    }
    let mut size = 0;
    let height = go(v, limit, &mut size);
    (size, height)
}

/// Identity of a traits entry, for traits references.
#[derive(Debug, PartialEq, Eq, Hash)]
struct TraitsKey {
    class_name: String,
    dynamic: bool,
    externalizable: bool,
    members: Vec<String>,
}

/// Encodes AMF3 values. All values written by one `Encoder` share one context: a string or
/// traits entry written once is referred to by index afterwards, so the bytes must be
/// decoded by one [`Decoder`] in the same order.
///
/// Some values have no exact encoding, and are written as close as the format allows:
/// lengths and counts beyond 2^28 - 1 are truncated; integers outside the 29-bit range become
/// doubles; dynamic members with an empty name (which would end the member list), and all
/// dynamic members of an object whose `dynamic` flag is false, are left out; so are empty keys
/// in an array's associative part.
#[derive(Debug, Default)]
pub struct Encoder {
    strings: HashMap<String, usize>,
    traits: HashMap<TraitsKey, usize>,
}

impl Encoder {
    /// An encoder with empty reference tables.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends the encoding of `v` to `out`.
    pub fn encode(&mut self, v: &Value, out: &mut impl BufMut) {
        match v {
            Value::Undefined => out.put_u8(marker::UNDEFINED),
            Value::Null => out.put_u8(marker::NULL),
            Value::Boolean(false) => out.put_u8(marker::FALSE),
            Value::Boolean(true) => out.put_u8(marker::TRUE),
            &Value::Integer(i) if (INT_MIN..=INT_MAX).contains(&i) => {
                out.put_u8(marker::INTEGER);
                write_u29(out, (i as u32) & U29_MAX);
            }
            &Value::Integer(i) => {
                out.put_u8(marker::DOUBLE);
                out.put_f64(f64::from(i));
            }
            &Value::Double(d) => {
                out.put_u8(marker::DOUBLE);
                out.put_f64(d);
            }
            Value::String(s) => {
                out.put_u8(marker::STRING);
                self.string(s, out);
            }
            Value::XmlDocument(s) => {
                out.put_u8(marker::XML_DOC);
                write_bytes(out, s.as_bytes());
            }
            Value::Xml(s) => {
                out.put_u8(marker::XML);
                write_bytes(out, s.as_bytes());
            }
            Value::ByteArray(b) => {
                out.put_u8(marker::BYTE_ARRAY);
                write_bytes(out, b);
            }
            &Value::Date(millis) => {
                out.put_u8(marker::DATE);
                out.put_u8(0x01);
                out.put_f64(millis);
            }
            Value::Array { assoc, dense } => {
                out.put_u8(marker::ARRAY);
                let dense = &dense[..dense.len().min(INLINE_MAX)];
                write_inline(out, dense.len());
                // An empty key would end the associative part early.
                for (k, v) in assoc.iter().filter(|(k, _)| !k.is_empty()) {
                    self.string(k, out);
                    self.encode(v, out);
                }
                out.put_u8(0x01);
                for v in dense {
                    self.encode(v, out);
                }
            }
            Value::Object(o) => self.object(o, out),
            Value::VectorInt { fixed, items } => {
                let items = &items[..items.len().min(INLINE_MAX)];
                out.put_u8(marker::VECTOR_INT);
                write_inline(out, items.len());
                out.put_u8(u8::from(*fixed));
                items.iter().for_each(|&i| out.put_i32(i));
            }
            Value::VectorUint { fixed, items } => {
                let items = &items[..items.len().min(INLINE_MAX)];
                out.put_u8(marker::VECTOR_UINT);
                write_inline(out, items.len());
                out.put_u8(u8::from(*fixed));
                items.iter().for_each(|&i| out.put_u32(i));
            }
            Value::VectorDouble { fixed, items } => {
                let items = &items[..items.len().min(INLINE_MAX)];
                out.put_u8(marker::VECTOR_DOUBLE);
                write_inline(out, items.len());
                out.put_u8(u8::from(*fixed));
                items.iter().for_each(|&d| out.put_f64(d));
            }
            Value::VectorObject {
                fixed,
                type_name,
                items,
            } => {
                let items = &items[..items.len().min(INLINE_MAX)];
                out.put_u8(marker::VECTOR_OBJECT);
                write_inline(out, items.len());
                out.put_u8(u8::from(*fixed));
                self.string(type_name, out);
                for v in items {
                    self.encode(v, out);
                }
            }
            Value::Dictionary { weak_keys, entries } => {
                let entries = &entries[..entries.len().min(INLINE_MAX)];
                out.put_u8(marker::DICTIONARY);
                write_inline(out, entries.len());
                out.put_u8(u8::from(*weak_keys));
                for (k, v) in entries {
                    self.encode(k, out);
                    self.encode(v, out);
                }
            }
        }
    }

    /// Appends a UTF-8-vr string, by reference when it was written before.
    fn string(&mut self, s: &str, out: &mut impl BufMut) {
        let s = truncate_str(s, INLINE_MAX);
        if s.is_empty() {
            out.put_u8(0x01);
        } else if let Some(&index) = self.strings.get(s) {
            write_u29(out, (index << 1) as u32);
        } else {
            // Past the U29 range an entry can no longer be referenced; keep writing literals.
            if self.strings.len() <= INLINE_MAX {
                self.strings.insert(s.to_owned(), self.strings.len());
            }
            write_bytes(out, s.as_bytes());
        }
    }

    fn object(&mut self, o: &Object, out: &mut impl BufMut) {
        out.put_u8(marker::OBJECT);
        let externalizable = o.externalized.is_some();
        // A traits header holds at most 2^25 - 1 member names.
        let sealed = if externalizable {
            &[][..]
        } else {
            &o.sealed[..o.sealed.len().min((U29_MAX >> 4) as usize)]
        };
        let key = TraitsKey {
            class_name: o.class_name.clone(),
            dynamic: o.dynamic && !externalizable,
            externalizable,
            members: sealed.iter().map(|(k, _)| k.clone()).collect(),
        };
        if let Some(&index) = self.traits.get(&key) {
            write_u29(out, ((index << 2) | 0b01) as u32);
        } else {
            let header = if externalizable {
                0b111
            } else {
                (sealed.len() << 4) | (usize::from(key.dynamic) << 3) | 0b011
            };
            write_u29(out, header as u32);
            self.string(&o.class_name, out);
            for (name, _) in sealed {
                self.string(name, out);
            }
            if self.traits.len() <= INLINE_MAX >> 1 {
                let n = self.traits.len();
                self.traits.insert(key, n);
            }
        }
        if let Some(bytes) = &o.externalized {
            match (flex_member(&o.class_name), o.sealed.as_slice()) {
                (Some(_), [(_, body)]) => self.encode(body, out),
                // Opaque bytes of a class we cannot parse: the caller vouches for them.
                _ => out.put_slice(bytes),
            }
            return;
        }
        for (_, v) in sealed {
            self.encode(v, out);
        }
        if o.dynamic {
            for (k, v) in o.dynamic_members.iter().filter(|(k, _)| !k.is_empty()) {
                self.string(k, out);
                self.encode(v, out);
            }
            out.put_u8(0x01);
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

/// Appends a U29 (at most 0x1FFF_FFFF; callers keep within range).
fn write_u29(out: &mut impl BufMut, v: u32) {
    let v = v & U29_MAX;
    match v {
        0..=0x7F => out.put_u8(v as u8),
        0x80..=0x3FFF => out.put_slice(&[(v >> 7) as u8 | 0x80, (v & 0x7F) as u8]),
        0x4000..=0x1F_FFFF => out.put_slice(&[
            (v >> 14) as u8 | 0x80,
            ((v >> 7) & 0x7F) as u8 | 0x80,
            (v & 0x7F) as u8,
        ]),
        _ => out.put_slice(&[
            (v >> 22) as u8 | 0x80,
            ((v >> 15) & 0x7F) as u8 | 0x80,
            ((v >> 8) & 0x7F) as u8 | 0x80,
            v as u8,
        ]),
    }
}

/// Appends an inline header `(n << 1) | 1`.
fn write_inline(out: &mut impl BufMut, n: usize) {
    write_u29(out, ((n.min(INLINE_MAX) << 1) | 1) as u32);
}

/// Appends an inline length header and the bytes (truncated to what the header can express).
fn write_bytes(out: &mut impl BufMut, b: &[u8]) {
    let b = &b[..b.len().min(INLINE_MAX)];
    write_inline(out, b.len());
    out.put_slice(b);
}

/// Decodes exactly one AMF3 value filling `buf`, with default limits.
pub fn decode(buf: &[u8]) -> Result<Value> {
    let mut d = Decoder::new(buf);
    let (v, _) = d.decode_counted()?;
    if !d.is_empty() {
        return Err(Amf3Error::TrailingBytes {
            offset: d.pos,
            count: buf.len() - d.pos,
        });
    }
    Ok(v)
}

/// Decodes every AMF3 value in `buf`, sharing one context, with default limits.
pub fn decode_all(buf: &[u8]) -> Result<Vec<Value>> {
    let mut d = Decoder::new(buf);
    let mut values = Vec::new();
    while !d.is_empty() {
        values.push(d.decode()?);
    }
    Ok(values)
}

/// Appends the encoding of `v` with a fresh context.
pub fn encode(v: &Value, out: &mut impl BufMut) {
    Encoder::new().encode(v, out);
}

/// The encoding of `v` with a fresh context.
pub fn encode_to_bytes(v: &Value) -> Bytes {
    let mut out = BytesMut::new();
    encode(v, &mut out);
    out.freeze()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc(v: &Value) -> Vec<u8> {
        encode_to_bytes(v).to_vec()
    }

    fn obj(class_name: &str, dynamic: bool, sealed: Vec<(&str, Value)>) -> Value {
        Value::Object(Box::new(Object {
            class_name: class_name.into(),
            dynamic,
            sealed: sealed.into_iter().map(|(k, v)| (k.into(), v)).collect(),
            dynamic_members: Vec::new(),
            externalized: None,
        }))
    }

    #[test]
    fn u29_golden_vectors() {
        let cases: [(u32, &[u8]); 7] = [
            (127, &[0x7F]),
            (128, &[0x81, 0x00]),
            (16383, &[0xFF, 0x7F]),
            (16384, &[0x81, 0x80, 0x00]),
            (2_097_152, &[0x80, 0xC0, 0x80, 0x00]),
            (0x0FFF_FFFF, &[0xBF, 0xFF, 0xFF, 0xFF]),
            (0x1FFF_FFFF, &[0xFF, 0xFF, 0xFF, 0xFF]),
        ];
        for (v, bytes) in cases {
            let mut out = Vec::new();
            write_u29(&mut out, v);
            assert_eq!(out, bytes, "encoding {v:#x}");
            let mut d = Decoder::new(bytes);
            assert_eq!(d.u29().unwrap(), v, "decoding {bytes:02x?}");
            assert!(d.is_empty());
        }
    }

    #[test]
    fn integer_is_signed_29_bit_and_falls_back_to_double() {
        assert_eq!(enc(&Value::Integer(-1)), [0x04, 0xFF, 0xFF, 0xFF, 0xFF]);
        assert_eq!(
            enc(&Value::Integer(INT_MIN)),
            [0x04, 0xC0, 0x80, 0x80, 0x00]
        );
        assert_eq!(
            decode(&[0x04, 0xFF, 0xFF, 0xFF, 0xFF]),
            Ok(Value::Integer(-1))
        );
        assert_eq!(
            decode(&[0x04, 0xC0, 0x80, 0x80, 0x00]),
            Ok(Value::Integer(INT_MIN))
        );
        assert_eq!(
            decode(&[0x04, 0xBF, 0xFF, 0xFF, 0xFF]),
            Ok(Value::Integer(INT_MAX))
        );
        let mut double = vec![0x05];
        double.extend_from_slice(&268_435_456f64.to_be_bytes());
        assert_eq!(enc(&Value::Integer(INT_MAX + 1)), double);
        assert_eq!(decode(&double), Ok(Value::Double(268_435_456.0)));
    }

    #[test]
    fn scalar_markers() {
        assert_eq!(enc(&Value::Undefined), [0x00]);
        assert_eq!(enc(&Value::Null), [0x01]);
        assert_eq!(enc(&false.into()), [0x02]);
        assert_eq!(enc(&true.into()), [0x03]);
        assert_eq!(enc(&"".into()), [0x06, 0x01]);
        assert_eq!(enc(&"ab".into()), [0x06, 0x05, b'a', b'b']);
        assert_eq!(
            enc(&Value::Xml("x".into())),
            [0x0B, 0x03, b'x'],
            "XML is length-prefixed, not a table string"
        );
        assert_eq!(enc(&Value::ByteArray(vec![9, 8])), [0x0C, 0x05, 9, 8]);
        let mut date = vec![0x08, 0x01];
        date.extend_from_slice(&1.5f64.to_be_bytes());
        assert_eq!(enc(&Value::Date(1.5)), date);
        assert_eq!(decode(&date), Ok(Value::Date(1.5)));
        assert_eq!(
            decode(&[0x0D, 0x05, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 7]),
            Ok(Value::VectorInt {
                fixed: true,
                items: vec![-1, 7]
            })
        );
        assert_eq!(
            decode(&[0x0E, 0x03, 0x00, 0xFF, 0xFF, 0xFF, 0xFF]),
            Ok(Value::VectorUint {
                fixed: false,
                items: vec![u32::MAX]
            })
        );
    }

    #[test]
    fn repeated_strings_are_sent_by_reference() {
        let v = Value::Array {
            assoc: vec![("abc".into(), "abc".into())],
            dense: vec!["abc".into(), "".into()],
        };
        let bytes = enc(&v);
        assert_eq!(
            bytes,
            [
                0x09, 0x05, // array, 2 dense
                0x07, b'a', b'b', b'c', // key "abc" (table 0)
                0x06, 0x00, // value: string ref 0
                0x01, // end of associative part
                0x06, 0x00, // string ref 0
                0x06, 0x01, // empty string, never a reference
            ]
        );
        assert_eq!(decode(&bytes), Ok(v));
    }

    #[test]
    fn repeated_traits_are_sent_by_reference() {
        let v = Value::Array {
            assoc: vec![],
            dense: vec![
                obj("C", false, vec![("a", Value::Integer(1))]),
                obj("C", false, vec![("a", Value::Integer(2))]),
            ],
        };
        let bytes = enc(&v);
        assert_eq!(
            bytes,
            [
                0x09, 0x05, 0x01, // array of 2
                0x0A, 0x13, 0x03, b'C', 0x03, b'a', 0x04, 0x01, // inline traits, 1 sealed
                0x0A, 0x01, 0x04, 0x02, // traits ref 0
            ]
        );
        assert_eq!(decode(&bytes), Ok(v));
    }

    #[test]
    fn object_references_are_resolved_to_copies() {
        // [ {a: 1}, <ref 1> ]; the array itself is object 0.
        let bytes = [
            0x09, 0x05, 0x01, 0x0A, 0x0B, 0x01, 0x03, b'a', 0x04, 0x01, 0x01, 0x0A, 0x02,
        ];
        let o = Value::object([("a", Value::Integer(1))]);
        assert_eq!(
            decode(&bytes),
            Ok(Value::Array {
                assoc: vec![],
                dense: vec![o.clone(), o]
            })
        );
    }

    #[test]
    fn references_reach_values_from_earlier_decode_calls() {
        // Value 1: [1]. Value 2: <ref 0>, the first array.
        let bytes = [0x09, 0x03, 0x01, 0x04, 0x01, 0x09, 0x00];
        let a = Value::Array {
            assoc: vec![],
            dense: vec![Value::Integer(1)],
        };
        assert_eq!(decode_all(&bytes), Ok(vec![a.clone(), a]));
    }

    #[test]
    fn one_encoder_context_across_values() {
        let values = [Value::from("shared"), Value::from("shared")];
        let mut e = Encoder::new();
        let mut out = Vec::new();
        for v in &values {
            e.encode(v, &mut out);
        }
        assert_eq!(out[out.len() - 2..], [0x06, 0x00], "second is a reference");
        assert_eq!(decode_all(&out).unwrap(), values);
    }

    #[test]
    fn flex_externalizable_classes() {
        let mut bytes = vec![0x0A, 0x07, (ARRAY_COLLECTION.len() << 1 | 1) as u8];
        bytes.extend_from_slice(ARRAY_COLLECTION.as_bytes());
        bytes.extend_from_slice(&[0x09, 0x03, 0x01, 0x04, 0x05]);
        let v = decode(&bytes).unwrap();
        let source = Value::Array {
            assoc: vec![],
            dense: vec![Value::Integer(5)],
        };
        assert_eq!(v, Object::array_collection(source.clone()).into());
        assert_eq!(v.get("source"), Some(&source));
        assert_eq!(enc(&v), bytes);

        let proxy: Value = Object::object_proxy(Value::object([("x", true.into())])).into();
        assert_eq!(decode(&enc(&proxy)), Ok(proxy));
    }

    #[test]
    fn unknown_externalizable_class_is_named_in_the_error() {
        let bytes = [0x0A, 0x07, 0x0B, b'a', b'.', b'B', b'c', b'd', 0xAA];
        let err = decode(&bytes).unwrap_err();
        assert_eq!(
            err,
            Amf3Error::UnsupportedExternalizable {
                offset: 0,
                class_name: "a.Bcd".into()
            }
        );
        assert!(err.to_string().contains("\"a.Bcd\""), "{err}");
    }

    #[test]
    fn dictionary_and_object_vector_round_trip() {
        let v = Value::Dictionary {
            weak_keys: true,
            entries: vec![
                ("k".into(), Value::Integer(1)),
                (
                    Value::VectorObject {
                        fixed: false,
                        type_name: "*".into(),
                        items: vec![Value::Null, "k".into()],
                    },
                    Value::VectorDouble {
                        fixed: true,
                        items: vec![0.5, -1.0],
                    },
                ),
            ],
        };
        assert_eq!(decode(&enc(&v)), Ok(v));
    }

    #[test]
    fn reference_loop_is_an_error() {
        // An array whose only element is a reference to itself.
        assert_eq!(
            decode(&[0x09, 0x03, 0x01, 0x09, 0x00]),
            Err(Amf3Error::ReferenceLoop {
                offset: 3,
                index: 0
            })
        );
        // An object whose member refers to the object.
        assert_eq!(
            decode(&[0x0A, 0x0B, 0x01, 0x03, b'a', 0x0A, 0x00, 0x01]),
            Err(Amf3Error::ReferenceLoop {
                offset: 5,
                index: 0
            })
        );
    }

    #[test]
    fn unknown_references_are_errors() {
        assert_eq!(
            decode(&[0x09, 0x03, 0x01, 0x09, 0x02]),
            Err(Amf3Error::BadObjectRef {
                offset: 3,
                index: 1,
                known: 1
            })
        );
        assert_eq!(
            decode(&[0x06, 0x02]),
            Err(Amf3Error::BadStringRef {
                offset: 1,
                index: 1,
                known: 0
            })
        );
        assert_eq!(
            decode(&[0x0A, 0x05]),
            Err(Amf3Error::BadTraitsRef {
                offset: 0,
                index: 1,
                known: 0
            })
        );
    }

    #[test]
    fn unknown_marker_and_trailing_bytes() {
        assert_eq!(
            decode(&[0x12]),
            Err(Amf3Error::UnknownMarker {
                offset: 0,
                marker: 0x12
            })
        );
        assert_eq!(
            decode(&[0x01, 0x01]),
            Err(Amf3Error::TrailingBytes {
                offset: 1,
                count: 1
            })
        );
    }

    /// Arrays that each hold two references to the previous one double in size per level.
    #[test]
    fn reference_amplification_is_bounded() {
        let levels = 40;
        let mut bytes = vec![0x09];
        write_inline(&mut bytes, levels + 1);
        bytes.extend_from_slice(&[0x01, 0x09, 0x01, 0x01]); // object 1: []
        for k in 1..=levels {
            // object k+1 = [ref k, ref k]
            bytes.extend_from_slice(&[0x09, 0x05, 0x01]);
            for _ in 0..2 {
                bytes.push(0x09);
                write_u29(&mut bytes, (k as u32) << 1);
            }
        }
        let err = decode(&bytes).unwrap_err();
        assert!(
            matches!(err, Amf3Error::TooManyValues { limit: 65_536, .. }),
            "{err}"
        );
    }

    /// Each array holds a reference to the previous one: one level deeper per reference
    /// without any nesting on the wire.
    #[test]
    fn reference_chains_respect_the_depth_limit() {
        let levels = 100;
        let mut bytes = vec![0x09];
        write_inline(&mut bytes, levels + 1);
        bytes.extend_from_slice(&[0x01, 0x09, 0x01, 0x01]);
        for k in 1..=levels {
            bytes.extend_from_slice(&[0x09, 0x03, 0x01, 0x09]);
            write_u29(&mut bytes, (k as u32) << 1);
        }
        let err = decode(&bytes).unwrap_err();
        assert!(matches!(err, Amf3Error::TooDeep { limit: 64, .. }), "{err}");
    }

    #[test]
    fn megabyte_of_nesting_hits_the_depth_limit() {
        let bytes = [0x09, 0x03, 0x01].repeat(350_000);
        let err = decode(&bytes).unwrap_err();
        assert_eq!(
            err,
            Amf3Error::TooDeep {
                offset: 64 * 3,
                limit: 64
            }
        );
        // Asking for more depth than the cap still stops at the cap.
        let limits = Limits {
            max_depth: usize::MAX,
            max_values: usize::MAX,
        };
        let err = Decoder::with_limits(&bytes, limits).decode().unwrap_err();
        assert!(
            matches!(err, Amf3Error::TooDeep { limit: 256, .. }),
            "{err}"
        );
        // Objects, dictionaries and vectors nest through their own code paths.
        let patterns: [&[u8]; 4] = [
            &[0x0A, 0x0B, 0x01, 0x03, b'a'],
            &[0x0A, 0x13, 0x01, 0x03, b'a'],
            &[0x11, 0x03, 0x00],
            &[0x10, 0x03, 0x00, 0x01],
        ];
        for p in patterns {
            let bytes = p.repeat((1 << 20) / p.len());
            let err = Decoder::with_limits(&bytes, limits).decode().unwrap_err();
            assert!(
                matches!(err, Amf3Error::TooDeep { limit: 256, .. }),
                "{p:02x?}: {err}"
            );
        }
    }

    #[test]
    fn huge_declared_lengths_in_short_input() {
        let cases: [&[u8]; 5] = [
            &[0x06, 0xFF, 0xFF, 0xFF, 0xFF, b'a'],
            &[0x0C, 0xFF, 0xFF, 0xFF, 0xFF, 0],
            &[0x0F, 0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00],
            &[0x09, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x01],
            &[0x0A, 0xFF, 0xFF, 0xFF, 0xFB, 0x01, 0x01],
        ];
        for bytes in cases {
            let err = decode(bytes).unwrap_err();
            assert!(
                matches!(err, Amf3Error::Truncated { .. }),
                "{bytes:02x?}: {err}"
            );
        }
    }

    #[test]
    fn too_many_values() {
        let v = Value::Array {
            assoc: vec![],
            dense: vec![Value::Null; 10],
        };
        let bytes = enc(&v);
        let limits = Limits {
            max_depth: 8,
            max_values: 10,
        };
        assert_eq!(
            Decoder::with_limits(&bytes, limits).decode(),
            Err(Amf3Error::TooManyValues {
                offset: bytes.len() - 1,
                limit: 10
            })
        );
        let limits = Limits {
            max_values: 11,
            ..limits
        };
        assert_eq!(Decoder::with_limits(&bytes, limits).decode(), Ok(v));
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        assert_eq!(
            decode(&[0x06, 0x05, 0xFF, b'a']),
            Ok(Value::String("\u{FFFD}a".into()))
        );
    }

    fn sample() -> Value {
        Value::Array {
            assoc: vec![("k".into(), Value::Date(3.0))],
            dense: vec![
                obj("Cls", true, vec![("m", "k".into())]),
                Object::array_collection(Value::ByteArray(vec![1, 2, 3])).into(),
                Value::VectorUint {
                    fixed: false,
                    items: vec![1, 2],
                },
                obj("Cls", true, vec![("m", Value::Integer(-300))]),
                Value::Double(0.25),
            ],
        }
    }

    #[test]
    fn truncation_at_every_byte_is_an_error() {
        let bytes = enc(&sample());
        assert_eq!(decode(&bytes), Ok(sample()));
        for n in 0..bytes.len() {
            let r = Decoder::new(&bytes[..n]).decode();
            assert!(
                matches!(r, Err(Amf3Error::Truncated { .. })),
                "prefix {n}: {r:?}"
            );
        }
    }

    fn double() -> impl Strategy<Value = f64> {
        any::<f64>().prop_filter("NaN never equals itself", |d| !d.is_nan())
    }

    pub(crate) fn arb_value() -> impl Strategy<Value = Value> {
        // Small alphabets make repeats (and so references) common.
        let text = prop_oneof!["[a-c]{0,3}", "\\PC{0,6}"];
        let leaf = prop_oneof![
            Just(Value::Undefined),
            Just(Value::Null),
            any::<bool>().prop_map(Value::Boolean),
            (INT_MIN..=INT_MAX).prop_map(Value::Integer),
            double().prop_map(Value::Double),
            text.clone().prop_map(Value::String),
            text.clone().prop_map(Value::XmlDocument),
            text.prop_map(Value::Xml),
            double().prop_map(Value::Date),
            prop::collection::vec(any::<u8>(), 0..6).prop_map(Value::ByteArray),
            (any::<bool>(), prop::collection::vec(any::<i32>(), 0..4))
                .prop_map(|(fixed, items)| Value::VectorInt { fixed, items }),
            (any::<bool>(), prop::collection::vec(any::<u32>(), 0..4))
                .prop_map(|(fixed, items)| Value::VectorUint { fixed, items }),
            (any::<bool>(), prop::collection::vec(double(), 0..4))
                .prop_map(|(fixed, items)| Value::VectorDouble { fixed, items }),
        ];
        leaf.prop_recursive(4, 48, 5, |inner| {
            let key = "[a-d]{1,3}";
            let members = move |inner| prop::collection::vec((key, inner), 0..4);
            prop_oneof![
                (
                    members(inner.clone()),
                    prop::collection::vec(inner.clone(), 0..4)
                )
                    .prop_map(|(assoc, dense)| Value::Array { assoc, dense }),
                (
                    "[A-B]{0,2}",
                    any::<bool>(),
                    prop::collection::vec(("[a-d]{0,2}", inner.clone()), 0..3),
                    members(inner.clone()),
                )
                    .prop_map(|(class_name, dynamic, sealed, dynamic_members)| {
                        Value::Object(Box::new(Object {
                            class_name,
                            dynamic,
                            sealed,
                            dynamic_members: if dynamic { dynamic_members } else { Vec::new() },
                            externalized: None,
                        }))
                    }),
                inner
                    .clone()
                    .prop_map(|v| Object::array_collection(v).into()),
                (
                    any::<bool>(),
                    "[*a-b]{0,2}",
                    prop::collection::vec(inner.clone(), 0..4)
                )
                    .prop_map(|(fixed, type_name, items)| Value::VectorObject {
                        fixed,
                        type_name,
                        items
                    }),
                (
                    any::<bool>(),
                    prop::collection::vec((inner.clone(), inner), 0..3)
                )
                    .prop_map(|(weak_keys, entries)| Value::Dictionary { weak_keys, entries }),
            ]
        })
    }

    proptest! {
        #[test]
        fn round_trip(v in arb_value()) {
            let bytes = enc(&v);
            let back = decode(&bytes).unwrap();
            prop_assert_eq!(&back, &v);
            prop_assert_eq!(enc(&back), bytes);
        }

        #[test]
        fn round_trip_in_one_context(values in prop::collection::vec(arb_value(), 1..4)) {
            let mut e = Encoder::new();
            let mut out = Vec::new();
            for v in &values {
                e.encode(v, &mut out);
            }
            prop_assert_eq!(decode_all(&out).unwrap(), values);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_all(&bytes);
        }
    }
}
