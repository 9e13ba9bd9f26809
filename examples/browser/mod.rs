//! RTMP to the browser: WebRTC (WHEP) and HLS from one ingested stream, for a GStreamer
//! application to copy. `examples/rtmp_to_browser.rs` is the smallest program using it, the
//! demo (`examples/demo.rs`) the fuller one; both take these files with `#[path]`.
//!
//! - `fanout.rs`: the branches shared by every viewer (H.264 pass-through, the B-frame
//!   re-encode, AAC → Opus) and the viewer list;
//! - `viewer.rs`: one webrtcbin per viewer, walled off from the shared branches;
//! - `offer.rs`: what to answer in a player's SDP offer;
//! - `http.rs` and `page.html`: WHEP, HLS and the player page on one HTTP port.
//!
//! Dependencies beyond the plugin's: gstreamer-webrtc and gstreamer-sdp (Rust), webrtcbin
//! (gstreamer1.0-plugins-bad) with gstreamer1.0-nice at run time.

// Each program that takes this module uses a different part of it.
#![allow(dead_code)]

pub mod fanout;
pub mod http;
pub mod offer;
pub mod viewer;
