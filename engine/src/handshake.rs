//! STUB: filled in by the handshake work.
