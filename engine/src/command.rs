//! STUB: filled in by the command work.
