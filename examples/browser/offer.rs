//! Reading a WHEP player's SDP offer: which payload types this server will send in.
//!
//! webrtcbin 1.22 does not rewrite payload types and answers with the first compatible format
//! unless told otherwise, so the payloaders must use the numbers the browser offered, and the
//! transceivers' `codec-preferences` must pin them (docs: the browser section of the README).

/// One m-line of the offer that this server will answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Track {
    /// H.264, packetization-mode 1: its payload type and the profile-level-id offered with it,
    /// which the viewer's payloader announces whatever the real profile is (browsers decode
    /// High profile under a constrained-baseline label; MediaMTX does the same).
    H264 { pt: u8, profile_level_id: String },
    /// Opus at 48 kHz, stereo.
    Opus { pt: u8 },
}

/// The tracks to send, in the order of the offer's m-lines (webrtcbin pairs its transceivers
/// with m-lines in that order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub tracks: Vec<Track>,
}

/// Why an offer cannot be answered: both are the player's fault (a 4xx).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfferError {
    /// Not SDP at all, or SDP without media.
    Malformed(String),
    /// SDP, but nothing in it that this server sends.
    Unsupported(String),
}

impl std::fmt::Display for OfferError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OfferError::Malformed(m) | OfferError::Unsupported(m) => f.write_str(m),
        }
    }
}

/// The payload types of one m-line: `(pt, encoding name, fmtp parameters)`.
fn formats(media: &gst_sdp::SDPMediaRef) -> Vec<(u8, String, String)> {
    let mut out = Vec::new();
    for format in media.formats() {
        let Ok(pt) = format.parse::<u8>() else {
            continue;
        };
        let attr = |key: &str| {
            media.attributes().find_map(|a| {
                let value = a.value()?;
                let (p, rest) = value.split_once(' ')?;
                (a.key() == key && p == format).then(|| rest.trim().to_string())
            })
        };
        let name = attr("rtpmap")
            .and_then(|r| r.split('/').next().map(str::to_ascii_uppercase))
            .unwrap_or_default();
        out.push((pt, name, attr("fmtp").unwrap_or_default()));
    }
    out
}

fn fmtp_value<'a>(fmtp: &'a str, key: &str) -> Option<&'a str> {
    fmtp.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        k.eq_ignore_ascii_case(key).then_some(v.trim())
    })
}

/// The best H.264 format of a video m-line: packetization-mode 1, constrained baseline
/// (`42e0..`) first, then any baseline (`42..`), then whatever else is offered.
fn pick_h264(formats: &[(u8, String, String)]) -> Option<Track> {
    let h264: Vec<(u8, &str)> = formats
        .iter()
        .filter(|(_, name, fmtp)| {
            name == "H264" && fmtp_value(fmtp, "packetization-mode") == Some("1")
        })
        .map(|(pt, _, fmtp)| {
            (
                *pt,
                fmtp_value(fmtp, "profile-level-id").unwrap_or("42e01f"),
            )
        })
        .collect();
    let rank = |plid: &str| {
        let plid = plid.to_ascii_lowercase();
        if plid.starts_with("42e0") {
            0
        } else if plid.starts_with("42") {
            1
        } else {
            2
        }
    };
    h264.iter()
        .min_by_key(|(_, plid)| rank(plid))
        .map(|(pt, plid)| Track::H264 {
            pt: *pt,
            profile_level_id: plid.to_ascii_lowercase(),
        })
}

/// Reads an offer. Only `recvonly`/`sendrecv` audio and video m-lines are answered; a video
/// m-line without H.264 packetization-mode 1 makes the whole offer unsupported (a browser
/// that offers video and gets none would show a black frame without saying why).
pub fn read_offer(text: &str) -> Result<(gst_sdp::SDPMessage, Choice), OfferError> {
    if !text.trim_start().starts_with("v=0") {
        return Err(OfferError::Malformed(
            "the offer is not SDP (it must start with v=0)".into(),
        ));
    }
    let sdp = gst_sdp::SDPMessage::parse_buffer(text.as_bytes())
        .map_err(|e| OfferError::Malformed(format!("the offer does not parse as SDP: {e}")))?;
    let mut tracks = Vec::new();
    for media in sdp.medias() {
        let formats = formats(media);
        match media.media() {
            Some("video") => tracks.push(pick_h264(&formats).ok_or_else(|| {
                OfferError::Unsupported(
                    "the offer's video has no H.264 with packetization-mode=1".into(),
                )
            })?),
            Some("audio") => {
                if let Some((pt, _, _)) = formats.iter().find(|(_, name, _)| name == "OPUS") {
                    tracks.push(Track::Opus { pt: *pt });
                }
            }
            _ => {}
        }
    }
    if sdp.medias_len() == 0 {
        return Err(OfferError::Malformed("the offer has no m-line".into()));
    }
    if !tracks.iter().any(|t| matches!(t, Track::H264 { .. })) {
        return Err(OfferError::Unsupported(
            "the offer has no video m-line (this server sends H.264 video and Opus audio)".into(),
        ));
    }
    Ok((sdp, Choice { tracks }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96 102 108 116\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\n\
        a=rtpmap:96 VP8/90000\r\na=rtpmap:102 H264/90000\r\n\
        a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f\r\n\
        a=rtpmap:108 H264/90000\r\n\
        a=fmtp:108 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
        a=rtpmap:116 H264/90000\r\n\
        a=fmtp:116 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=recvonly\r\n\
        a=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\n";

    #[test]
    fn picks_constrained_baseline_and_opus_in_offer_order() {
        gst::init().unwrap();
        let (_, choice) = read_offer(CHROME).unwrap();
        assert_eq!(
            choice.tracks,
            vec![
                Track::H264 {
                    pt: 108,
                    profile_level_id: "42e01f".into()
                },
                Track::Opus { pt: 111 }
            ]
        );
    }

    #[test]
    fn garbage_and_vp8_only_are_refused() {
        gst::init().unwrap();
        assert!(matches!(read_offer("hello"), Err(OfferError::Malformed(_))));
        let vp8 = CHROME.replace("96 102 108 116", "96");
        let vp8: String = vp8
            .lines()
            .filter(|l| !l.contains("H264") && !l.contains("fmtp:1"))
            .map(|l| format!("{l}\r\n"))
            .collect();
        assert!(matches!(read_offer(&vp8), Err(OfferError::Unsupported(_))));
    }
}
