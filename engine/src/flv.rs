//! STUB: filled in by the flv work.
