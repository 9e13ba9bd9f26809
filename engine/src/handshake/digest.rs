//! The FP9 "complex" handshake arithmetic: where the digest and the DH key sit in a 1536-byte
//! C1/S1, how the digest is computed, and how the C2/S2 signature is derived from the peer's
//! digest.
//!
//! Everything here is a pure function of its inputs. Positions are always derived from 4 bytes
//! of the packet itself, reduced modulo a bound that keeps the 32-byte digest (or the 128-byte
//! DH key) inside the packet, so no index computed here can fall outside a
//! [`HANDSHAKE_SIZE`](super::HANDSHAKE_SIZE) buffer.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::HANDSHAKE_SIZE;

/// Length of an HMAC-SHA256 digest, of the C1/S1 digest and of the C2/S2 signature.
pub const DIGEST_LEN: usize = 32;

/// Length of a DH public key as embedded in C1/S1.
pub const DH_KEY_LEN: usize = 128;

/// "Genuine Adobe Flash Player 001" followed by the 32-byte constant tail. C1 digests use the
/// first 30 bytes (the text), C2 signature keys use all 62.
pub const GENUINE_FP_KEY: [u8; 62] = [
    0x47, 0x65, 0x6E, 0x75, 0x69, 0x6E, 0x65, 0x20, 0x41, 0x64, 0x6F, 0x62, 0x65, 0x20, 0x46, 0x6C,
    0x61, 0x73, 0x68, 0x20, 0x50, 0x6C, 0x61, 0x79, 0x65, 0x72, 0x20, 0x30, 0x30, 0x31, 0xF0, 0xEE,
    0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1, 0x02, 0x9E, 0x7E, 0x57, 0x6E, 0xEC,
    0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE,
];

/// "Genuine Adobe Flash Media Server 001" followed by the same 32-byte tail. S1 digests use the
/// first 36 bytes, S2 signature keys use all 68.
pub const GENUINE_FMS_KEY: [u8; 68] = [
    0x47, 0x65, 0x6E, 0x75, 0x69, 0x6E, 0x65, 0x20, 0x41, 0x64, 0x6F, 0x62, 0x65, 0x20, 0x46, 0x6C,
    0x61, 0x73, 0x68, 0x20, 0x4D, 0x65, 0x64, 0x69, 0x61, 0x20, 0x53, 0x65, 0x72, 0x76, 0x65, 0x72,
    0x20, 0x30, 0x30, 0x31, 0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1,
    0x02, 0x9E, 0x7E, 0x57, 0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36,
    0xCF, 0xEB, 0x31, 0xAE,
];

/// Key for C1 digests (client side).
pub const FP_DIGEST_KEY: &[u8] = GENUINE_FP_KEY.split_at(30).0;
/// Key for S1 digests (server side).
pub const FMS_DIGEST_KEY: &[u8] = GENUINE_FMS_KEY.split_at(36).0;

/// One of the two digest/DH placements of the complex handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Digest offset from bytes 8..12, DH key offset from bytes 1532..1536.
    Zero,
    /// Digest offset from bytes 772..776, DH key offset from bytes 768..772.
    One,
}

impl Scheme {
    /// Both schemes, in the order peers are tried. The order only matters for cost: a digest
    /// cannot validate under the wrong scheme except by an HMAC collision.
    pub const ALL: [Scheme; 2] = [Scheme::Zero, Scheme::One];

    /// Position of the 32-byte digest in a 1536-byte packet.
    pub fn digest_pos(self, packet: &[u8; HANDSHAKE_SIZE]) -> usize {
        match self {
            Scheme::Zero => sum4(packet, 8) % 728 + 12,
            Scheme::One => sum4(packet, 772) % 728 + 776,
        }
    }

    /// Position of the 128-byte DH public key in a 1536-byte packet.
    pub fn dh_pos(self, packet: &[u8; HANDSHAKE_SIZE]) -> usize {
        match self {
            Scheme::Zero => sum4(packet, 1532) % 632 + 772,
            Scheme::One => sum4(packet, 768) % 632 + 8,
        }
    }
}

/// Sum of four unsigned bytes starting at `at` (0..=1020).
fn sum4(packet: &[u8; HANDSHAKE_SIZE], at: usize) -> usize {
    packet[at..at + 4].iter().map(|&b| usize::from(b)).sum()
}

/// HMAC-SHA256 of the concatenation of `parts` under `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; DIGEST_LEN] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// The digest of `packet` with the 32 bytes at `pos` left out (a 1504-byte message).
pub fn packet_digest(packet: &[u8; HANDSHAKE_SIZE], pos: usize, key: &[u8]) -> [u8; DIGEST_LEN] {
    hmac_sha256(key, &[&packet[..pos], &packet[pos + DIGEST_LEN..]])
}

/// Computes the digest for `scheme` and writes it into the packet. Anything else that must be
/// covered (the DH key) has to be in place before this is called.
pub fn imprint_digest(
    packet: &mut [u8; HANDSHAKE_SIZE],
    scheme: Scheme,
    key: &[u8],
) -> [u8; DIGEST_LEN] {
    let pos = scheme.digest_pos(packet);
    let digest = packet_digest(packet, pos, key);
    packet[pos..pos + DIGEST_LEN].copy_from_slice(&digest);
    digest
}

/// Returns the first scheme whose digest validates, with the digest found there.
pub fn find_digest(
    packet: &[u8; HANDSHAKE_SIZE],
    key: &[u8],
) -> Option<(Scheme, [u8; DIGEST_LEN])> {
    Scheme::ALL.into_iter().find_map(|scheme| {
        let pos = scheme.digest_pos(packet);
        let expected = packet_digest(packet, pos, key);
        (packet[pos..pos + DIGEST_LEN] == expected).then_some((scheme, expected))
    })
}

/// Key under which a C2 (client) or S2 (server) signature is computed: the HMAC of the peer's
/// C1/S1 digest under the full 62/68-byte Genuine key of the side that signs.
pub fn signature_key(genuine_key: &[u8], peer_digest: &[u8; DIGEST_LEN]) -> [u8; DIGEST_LEN] {
    hmac_sha256(genuine_key, &[peer_digest])
}

/// The plain (type 3/6) signature over the first 1504 bytes of a C2/S2.
pub fn signature(key: &[u8; DIGEST_LEN], packet: &[u8; HANDSHAKE_SIZE]) -> [u8; DIGEST_LEN] {
    hmac_sha256(key, &[&packet[..HANDSHAKE_SIZE - DIGEST_LEN]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The Appendix A.2 buffer: B[i] = (13·i + 7) mod 256.
    fn a2_buffer() -> [u8; HANDSHAKE_SIZE] {
        std::array::from_fn(|i| ((13 * i + 7) % 256) as u8)
    }

    #[test]
    fn key_slices_are_the_genuine_texts() {
        assert_eq!(FP_DIGEST_KEY, b"Genuine Adobe Flash Player 001");
        assert_eq!(FMS_DIGEST_KEY, b"Genuine Adobe Flash Media Server 001");
        assert_eq!(GENUINE_FP_KEY[30..], GENUINE_FMS_KEY[36..]);
    }

    #[test]
    fn appendix_a2_offsets() {
        let b = a2_buffer();
        assert_eq!(Scheme::Zero.digest_pos(&b), 534);
        assert_eq!(Scheme::Zero.dh_pos(&b), 1062);
        assert_eq!(Scheme::One.digest_pos(&b), 1090);
        assert_eq!(Scheme::One.dh_pos(&b), 114);
    }

    #[test]
    fn appendix_a2_digests() {
        let b = a2_buffer();
        assert_eq!(
            hex(&packet_digest(&b, 534, FP_DIGEST_KEY)),
            "afa9c7cb5188c3fc0ad95bcff166a5ba0b49068c1957821ccfa960f66ee975cf"
        );
        assert_eq!(
            hex(&packet_digest(&b, 1090, FMS_DIGEST_KEY)),
            "fcbb5017e0c149d71ba08546261590e091a80307b0e76ac2192a01d9505c1d1c"
        );
    }

    #[test]
    fn imprinted_digest_is_found_under_its_own_scheme_only() {
        for scheme in Scheme::ALL {
            let mut b = a2_buffer();
            let digest = imprint_digest(&mut b, scheme, FP_DIGEST_KEY);
            assert_eq!(find_digest(&b, FP_DIGEST_KEY), Some((scheme, digest)));
            // The other side's key does not validate it.
            assert_eq!(find_digest(&b, FMS_DIGEST_KEY), None);
        }
        assert_eq!(find_digest(&a2_buffer(), FP_DIGEST_KEY), None);
    }

    #[test]
    fn positions_stay_in_range_for_extreme_offset_bytes() {
        for fill in [0x00u8, 0xFF] {
            let b = [fill; HANDSHAKE_SIZE];
            for scheme in Scheme::ALL {
                assert!(scheme.digest_pos(&b) + DIGEST_LEN <= HANDSHAKE_SIZE);
                assert!(scheme.dh_pos(&b) + DH_KEY_LEN <= HANDSHAKE_SIZE);
            }
        }
        let b = [0xFF; HANDSHAKE_SIZE];
        // 1020 % 728 + 12 and 1020 % 632 + 772: the largest reachable positions.
        assert_eq!(Scheme::Zero.digest_pos(&b), 304);
        assert_eq!(Scheme::Zero.dh_pos(&b), 1160);
    }
}
