//! STUB: filled in by the chunk work.
