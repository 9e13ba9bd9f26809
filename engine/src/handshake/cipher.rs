//! RTMPE symmetric crypto: the RC4 stream pair that covers everything after the handshake, and
//! the XTEA (type 8) / Blowfish (type 9) encipherment of the 32-byte C2/S2 signature.
//!
//! Both block ciphers read each 8-byte block as two little-endian 32-bit words, which is what
//! librtmp and current FFmpeg do; the key tables are data from the fact sheet (§2.5). Index 15
//! of each table is never selected because key ids are taken modulo 15.

use blowfish::BlowfishLE;
use rc4::{KeyInit, Rc4, StreamCipher};
use xtea::Xtea;
use xtea::cipher::{Array, BlockCipherEncrypt};

use super::digest::{DH_KEY_LEN, DIGEST_LEN, hmac_sha256};

/// Bytes of keystream both directions discard once the handshake is over.
pub const RC4_WARM_UP: usize = 1536;

/// XTEA key words per key id.
const XTEA_KEYS: [[u32; 4]; 16] = [
    [0xBFF034B2, 0x11D9081F, 0xCCDFB795, 0x748DE732],
    [0x086A5EB6, 0x1743090E, 0x6EF05AB8, 0xFE5A39E2],
    [0x7B10956F, 0x76CE0521, 0x2388A73A, 0x440149A1],
    [0xA943F317, 0xEBF11BB2, 0xA691A5EE, 0x17F36339],
    [0x7A30E00A, 0xB529E22C, 0xA087AEA5, 0xC0CB79AC],
    [0xBDCE0C23, 0x2FEBDEFF, 0x1CFAAE16, 0x1123239D],
    [0x55DD3F7B, 0x77E7E62E, 0x9BB8C499, 0xC9481EE4],
    [0x407BB6B4, 0x71E89136, 0xA7AEBF55, 0xCA33B839],
    [0xFCF6BDC3, 0xB63C3697, 0x7CE4F825, 0x04D959B2],
    [0x28E091FD, 0x41954C4C, 0x7FB7DB00, 0xE3A066F8],
    [0x57845B76, 0x4F251B03, 0x46D45BCD, 0xA2C30D29],
    [0x0ACCEEF8, 0xDA55B546, 0x03473452, 0x5863713B],
    [0xB82075DC, 0xA75F1FEE, 0xD84268E8, 0xA72A44CC],
    [0x07CF6E9E, 0xA16D7B25, 0x9FA7AE6C, 0xD92F5629],
    [0xFEB1EAE4, 0x8C8C3CE1, 0x4E0064A7, 0x6A387C2A],
    [0x893A9427, 0xCC3013A2, 0xF106385B, 0xA829F927],
];

/// Blowfish keys (24 bytes) per key id.
const BLOWFISH_KEYS: [[u8; 24]; 16] = [
    [
        0x79, 0x34, 0x77, 0x4C, 0x67, 0xD1, 0x38, 0x3A, 0xDF, 0xB3, 0x56, 0xBE, 0x8B, 0x7B, 0xD0,
        0x24, 0x38, 0xE0, 0x73, 0x58, 0x41, 0x5D, 0x69, 0x67,
    ],
    [
        0x46, 0xF6, 0xB4, 0xCC, 0x01, 0x93, 0xE3, 0xA1, 0x9E, 0x7D, 0x3C, 0x65, 0x55, 0x86, 0xFD,
        0x09, 0x8F, 0xF7, 0xB3, 0xC4, 0x6F, 0x41, 0xCA, 0x5C,
    ],
    [
        0x1A, 0xE7, 0xE2, 0xF3, 0xF9, 0x14, 0x79, 0x94, 0xC0, 0xD3, 0x97, 0x43, 0x08, 0x7B, 0xB3,
        0x84, 0x43, 0x2F, 0x9D, 0x84, 0x3F, 0x21, 0x01, 0x9B,
    ],
    [
        0xD3, 0xE3, 0x54, 0xB0, 0xF7, 0x1D, 0xF6, 0x2B, 0x5A, 0x43, 0x4D, 0x04, 0x83, 0x64, 0x3E,
        0x0D, 0x59, 0x2F, 0x61, 0xCB, 0xB1, 0x6A, 0x59, 0x0D,
    ],
    [
        0xC8, 0xC1, 0xE9, 0xB8, 0x16, 0x56, 0x99, 0x21, 0x7B, 0x5B, 0x36, 0xB7, 0xB5, 0x9B, 0xDF,
        0x06, 0x49, 0x2C, 0x97, 0xF5, 0x95, 0x48, 0x85, 0x7E,
    ],
    [
        0xEB, 0xE5, 0xE6, 0x2E, 0xA4, 0xBA, 0xD4, 0x2C, 0xF2, 0x16, 0xE0, 0x8F, 0x66, 0x23, 0xA9,
        0x43, 0x41, 0xCE, 0x38, 0x14, 0x84, 0x95, 0x00, 0x53,
    ],
    [
        0x66, 0xDB, 0x90, 0xF0, 0x3B, 0x4F, 0xF5, 0x6F, 0xE4, 0x9C, 0x20, 0x89, 0x35, 0x5E, 0xD2,
        0xB2, 0xC3, 0x9E, 0x9F, 0x7F, 0x63, 0xB2, 0x28, 0x81,
    ],
    [
        0xBB, 0x20, 0xAC, 0xED, 0x2A, 0x04, 0x6A, 0x19, 0x94, 0x98, 0x9B, 0xC8, 0xFF, 0xCD, 0x93,
        0xEF, 0xC6, 0x0D, 0x56, 0xA7, 0xEB, 0x13, 0xD9, 0x30,
    ],
    [
        0xBC, 0xF2, 0x43, 0x82, 0x09, 0x40, 0x8A, 0x87, 0x25, 0x43, 0x6D, 0xE6, 0xBB, 0xA4, 0xB9,
        0x44, 0x58, 0x3F, 0x21, 0x7C, 0x99, 0xBB, 0x3F, 0x24,
    ],
    [
        0xEC, 0x1A, 0xAA, 0xCD, 0xCE, 0xBD, 0x53, 0x11, 0xD2, 0xFB, 0x83, 0xB6, 0xC3, 0xBA, 0xAB,
        0x4F, 0x62, 0x79, 0xE8, 0x65, 0xA9, 0x92, 0x28, 0x76,
    ],
    [
        0xC6, 0x0C, 0x30, 0x03, 0x91, 0x18, 0x2D, 0x7B, 0x79, 0xDA, 0xE1, 0xD5, 0x64, 0x77, 0x9A,
        0x12, 0xC5, 0xB1, 0xD7, 0x91, 0x4F, 0x96, 0x4C, 0xA3,
    ],
    [
        0xD7, 0x7C, 0x2A, 0xBF, 0xA6, 0xE7, 0x85, 0x7C, 0x45, 0xAD, 0xFF, 0x12, 0x94, 0xD8, 0xDE,
        0xA4, 0x5C, 0x3D, 0x79, 0xA4, 0x44, 0x02, 0x5D, 0x22,
    ],
    [
        0x16, 0x19, 0x0D, 0x81, 0x6A, 0x4C, 0xC7, 0xF8, 0xB8, 0xF9, 0x4E, 0xCD, 0x2C, 0x9E, 0x90,
        0x84, 0xB2, 0x08, 0x25, 0x60, 0xE1, 0x1E, 0xAE, 0x18,
    ],
    [
        0xE9, 0x7C, 0x58, 0x26, 0x1B, 0x51, 0x9E, 0x49, 0x82, 0x60, 0x61, 0xFC, 0xA0, 0xA0, 0x1B,
        0xCD, 0xF5, 0x05, 0xD6, 0xA6, 0x6D, 0x07, 0x88, 0xA3,
    ],
    [
        0x2B, 0x97, 0x11, 0x8B, 0xD9, 0x4E, 0xD9, 0xDF, 0x20, 0xE3, 0x9C, 0x10, 0xE6, 0xA1, 0x35,
        0x21, 0x11, 0xF9, 0x13, 0x0D, 0x0B, 0x24, 0x65, 0xB2,
    ],
    [
        0x53, 0x6A, 0x4C, 0x54, 0xAC, 0x8B, 0x9B, 0xB8, 0x97, 0x29, 0xFC, 0x60, 0x2C, 0x5B, 0x3A,
        0x85, 0x68, 0xB5, 0xAA, 0x6A, 0x44, 0xCD, 0x3F, 0xA7,
    ],
];

/// Enciphers one 8-byte block with XTEA key `id` (0..16).
pub fn xtea_block(id: usize, block: &mut [u8; 8]) {
    let mut key = [0u8; 16];
    for (chunk, word) in key.chunks_exact_mut(4).zip(XTEA_KEYS[id]) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    let cipher = <Xtea as xtea::cipher::KeyInit>::new(&Array(key));
    let mut b = Array(*block);
    cipher.encrypt_block(&mut b);
    *block = b.0;
}

/// Enciphers one 8-byte block with Blowfish key `id` (0..16), little-endian halves.
pub fn blowfish_block(id: usize, block: &mut [u8; 8]) {
    let cipher = <BlowfishLE as blowfish::cipher::KeyInit>::new_from_slice(&BLOWFISH_KEYS[id])
        .expect("24-byte keys are within Blowfish's 4..=56");
    let mut b = Array(*block);
    cipher.encrypt_block(&mut b);
    *block = b.0;
}

/// Key ids of the four signature blocks: byte 0, 8, 16 and 24 of the signature key, mod 15.
pub fn signature_key_ids(signature_key: &[u8; DIGEST_LEN]) -> [usize; 4] {
    [0, 8, 16, 24].map(|i| usize::from(signature_key[i] % 15))
}

/// Applies the type-8/9 encipherment to a C2/S2 signature in place; type 6 (and 3) leaves it
/// alone.
pub fn encipher_signature(kind: u8, signature_key: &[u8; DIGEST_LEN], sig: &mut [u8; DIGEST_LEN]) {
    let block_fn: fn(usize, &mut [u8; 8]) = match kind {
        8 => xtea_block,
        9 => blowfish_block,
        _ => return,
    };
    let ids = signature_key_ids(signature_key);
    for (block, id) in sig.chunks_exact_mut(8).zip(ids) {
        let block: &mut [u8; 8] = block.try_into().expect("chunks of 8");
        block_fn(id, block);
    }
}

/// The two RC4 keystreams of an RTMPE connection, one per direction.
pub struct Rc4Pair {
    outgoing: Rc4,
    incoming: Rc4,
}

impl std::fmt::Debug for Rc4Pair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rc4Pair").finish_non_exhaustive()
    }
}

impl Rc4Pair {
    /// A pair from raw 16-byte keys, at keystream position 0 (no warm-up). Useful for tests and
    /// for tools that already know the keys; handshakes hand out warmed-up pairs.
    pub fn from_keys(out_key: &[u8; 16], in_key: &[u8; 16]) -> Self {
        Self {
            outgoing: Rc4::new_from_slice(out_key).expect("RC4 takes 16-byte keys"),
            incoming: Rc4::new_from_slice(in_key).expect("RC4 takes 16-byte keys"),
        }
    }

    /// Derives both keys from the shared secret: each direction is keyed with the HMAC of the
    /// receiver's public key, so our outgoing stream uses the peer's key and our incoming
    /// stream our own. Not yet warmed up.
    pub(crate) fn derive(
        secret: &[u8; DH_KEY_LEN],
        own_public: &[u8; DH_KEY_LEN],
        peer_public: &[u8; DH_KEY_LEN],
    ) -> Self {
        let out = hmac_sha256(secret, &[peer_public]);
        let inc = hmac_sha256(secret, &[own_public]);
        let (out_key, in_key) = (first16(&out), first16(&inc));
        Self::from_keys(&out_key, &in_key)
    }

    /// Discards the first 1536 bytes of both keystreams, as both peers do after the handshake.
    pub(crate) fn warm_up(&mut self) {
        let mut scratch = [0u8; RC4_WARM_UP];
        self.outgoing.apply_keystream(&mut scratch);
        self.incoming.apply_keystream(&mut scratch);
    }

    /// Encrypts bytes about to be sent, in place. Every byte sent must pass through here, in
    /// order.
    pub fn encrypt(&mut self, buf: &mut [u8]) {
        self.outgoing.apply_keystream(buf);
    }

    /// Decrypts received bytes, in place. Every byte received must pass through here, in order.
    pub fn decrypt(&mut self, buf: &mut [u8]) {
        self.incoming.apply_keystream(buf);
    }
}

fn first16(digest: &[u8; DIGEST_LEN]) -> [u8; 16] {
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn appendix_a1_block_vectors() {
        let cases = [
            (0, "c7c82aca95daa419", "a031fb6d807be57d"),
            (5, "b4cb855c172482f6", "1d25cc9bde471da4"),
            (10, "58d64861f02e38fa", "67e5d62da3dcf2e5"),
            (15, "076bb48e7cc1d4fa", "2bd78f9c6fc44115"),
        ];
        for (id, xtea, blowfish) in cases {
            let mut block = [0, 1, 2, 3, 4, 5, 6, 7];
            xtea_block(id, &mut block);
            assert_eq!(hex(&block), xtea, "XTEA key {id}");
            let mut block = [0, 1, 2, 3, 4, 5, 6, 7];
            blowfish_block(id, &mut block);
            assert_eq!(hex(&block), blowfish, "Blowfish key {id}");
        }
    }

    #[test]
    fn xtea_table_matches_its_byte_form() {
        // Row 0 of the fact sheet's LE byte column.
        let mut bytes = Vec::new();
        for word in XTEA_KEYS[0] {
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        assert_eq!(hex(&bytes), "b234f0bf1f08d91195b7dfcc32e78d74");
    }

    #[test]
    fn appendix_a3_rc4_warm_up() {
        let secret: [u8; DH_KEY_LEN] = std::array::from_fn(|i| i as u8);
        let pub_in: [u8; DH_KEY_LEN] = std::array::from_fn(|i| 255 - i as u8);
        let pub_out: [u8; DH_KEY_LEN] = std::array::from_fn(|i| (3 * i % 256) as u8);
        // pubIn is the peer's key, pubOut our own.
        let mut pair = Rc4Pair::derive(&secret, &pub_out, &pub_in);
        pair.warm_up();
        let mut out = [0u8; 16];
        pair.encrypt(&mut out);
        assert_eq!(hex(&out), "b5a2f5d9d601531d1c7706ca34525f73");
        let mut inc = [0u8; 16];
        pair.decrypt(&mut inc);
        assert_eq!(hex(&inc), "f2047bc35685d2e6d2982454fab8836d");
    }

    #[test]
    fn type_6_signature_is_untouched_and_ids_skip_15() {
        let key = [0x0Fu8; DIGEST_LEN];
        assert_eq!(signature_key_ids(&key), [0; 4]);
        let key = [0xFEu8; DIGEST_LEN]; // 254 % 15 = 14
        assert_eq!(signature_key_ids(&key), [14; 4]);
        let mut sig = [7u8; DIGEST_LEN];
        encipher_signature(6, &key, &mut sig);
        assert_eq!(sig, [7u8; DIGEST_LEN]);
        encipher_signature(8, &key, &mut sig);
        assert_ne!(sig, [7u8; DIGEST_LEN]);
    }
}
