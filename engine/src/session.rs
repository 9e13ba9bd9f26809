//! STUB: filled in by the session work.
