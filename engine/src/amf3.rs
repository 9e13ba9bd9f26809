//! AMF3 values and codec (protocol-facts §6.2).
//!
//! STUB: filled in by the AMF work.

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
