//! STUB: filled in by the url work.
