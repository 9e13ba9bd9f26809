//! Diffie-Hellman over the 1024-bit RFC 2409 "Second Oakley Group" (g = 2), as RTMPE uses it.
//!
//! Public keys travel as exactly 128 big-endian bytes, left-padded with zeros. The shared
//! secret is handed out the way librtmp and FFmpeg produce it: the minimal big-endian encoding
//! at the start of a 128-byte buffer with a zero tail, because that buffer is the HMAC key of
//! the RC4 key derivation and a peer that pads differently would derive other keys.
//!
//! Cost: one 1024-bit modular exponentiation for our key, one to check the peer key and one for
//! the secret, per connection.

use std::sync::LazyLock;

use num_bigint::BigUint;
use rand::RngCore;

use super::digest::DH_KEY_LEN;

/// The group prime P, big-endian.
const PRIME: [u8; DH_KEY_LEN] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xC9, 0x0F, 0xDA, 0xA2, 0x21, 0x68, 0xC2, 0x34,
    0xC4, 0xC6, 0x62, 0x8B, 0x80, 0xDC, 0x1C, 0xD1, 0x29, 0x02, 0x4E, 0x08, 0x8A, 0x67, 0xCC, 0x74,
    0x02, 0x0B, 0xBE, 0xA6, 0x3B, 0x13, 0x9B, 0x22, 0x51, 0x4A, 0x08, 0x79, 0x8E, 0x34, 0x04, 0xDD,
    0xEF, 0x95, 0x19, 0xB3, 0xCD, 0x3A, 0x43, 0x1B, 0x30, 0x2B, 0x0A, 0x6D, 0xF2, 0x5F, 0x14, 0x37,
    0x4F, 0xE1, 0x35, 0x6D, 0x6D, 0x51, 0xC2, 0x45, 0xE4, 0x85, 0xB5, 0x76, 0x62, 0x5E, 0x7E, 0xC6,
    0xF4, 0x4C, 0x42, 0xE9, 0xA6, 0x37, 0xED, 0x6B, 0x0B, 0xFF, 0x5C, 0xB6, 0xF4, 0x06, 0xB7, 0xED,
    0xEE, 0x38, 0x6B, 0xFB, 0x5A, 0x89, 0x9F, 0xA5, 0xAE, 0x9F, 0x24, 0x11, 0x7C, 0x4B, 0x1F, 0xE6,
    0x49, 0x28, 0x66, 0x51, 0xEC, 0xE6, 0x53, 0x81, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
];

/// Bytes of randomness in a private key: 1016 bits, as FFmpeg draws them.
const PRIVATE_KEY_BYTES: usize = DH_KEY_LEN - 1;

struct Group {
    p: BigUint,
    /// (P - 1) / 2, the order of the subgroup that 2 generates.
    q: BigUint,
    p_minus_1: BigUint,
    one: BigUint,
    g: BigUint,
}

static GROUP: LazyLock<Group> = LazyLock::new(|| {
    let p = BigUint::from_bytes_be(&PRIME);
    let one = BigUint::from(1u8);
    let p_minus_1 = &p - &one;
    Group {
        q: &p_minus_1 >> 1,
        p_minus_1,
        p,
        one,
        g: BigUint::from(2u8),
    }
});

/// Why a DH public key is rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DhKeyProblem {
    /// y is 0 or 1.
    #[error("y <= 1")]
    TooSmall,
    /// y is P-1 or larger.
    #[error("y >= P-1")]
    TooLarge,
    /// y^Q mod P is not 1: not a member of the prime-order subgroup, which in practice means
    /// the key was read from the wrong offset.
    #[error("y^Q mod P != 1 (not in the prime-order subgroup; wrong DH offset?)")]
    NotInSubgroup,
}

fn check_range(y: &BigUint) -> Result<(), DhKeyProblem> {
    let group = &*GROUP;
    if *y <= group.one {
        Err(DhKeyProblem::TooSmall)
    } else if *y >= group.p_minus_1 {
        Err(DhKeyProblem::TooLarge)
    } else {
        Ok(())
    }
}

/// The full validity check applied to a peer's key: 1 < y < P-1 and y^Q mod P == 1.
pub fn check_public_key(key: &[u8; DH_KEY_LEN]) -> Result<(), DhKeyProblem> {
    let y = BigUint::from_bytes_be(key);
    check_range(&y)?;
    let group = &*GROUP;
    if y.modpow(&group.q, &group.p) != group.one {
        return Err(DhKeyProblem::NotInSubgroup);
    }
    Ok(())
}

/// `value` as exactly 128 big-endian bytes, left-padded with zeros. Values handled here are
/// below P, so they always fit.
fn to_padded(value: &BigUint) -> [u8; DH_KEY_LEN] {
    let bytes = value.to_bytes_be();
    let mut out = [0u8; DH_KEY_LEN];
    out[DH_KEY_LEN - bytes.len()..].copy_from_slice(&bytes);
    out
}

/// Our side of the exchange.
pub struct KeyPair {
    private: BigUint,
    public: [u8; DH_KEY_LEN],
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private exponent stays out of logs.
        f.debug_struct("KeyPair")
            .field("public", &&self.public[..8])
            .finish_non_exhaustive()
    }
}

impl KeyPair {
    /// Draws private keys until the public key is valid. For g = 2 in this safe-prime group
    /// every 2^x lies in the order-Q subgroup (2 is a quadratic residue since P ≡ 7 mod 8), so
    /// only the range can fail, and that only for x ≡ 0 mod Q: the range check is enough here
    /// and saves a modular exponentiation per connection.
    pub fn generate(rng: &mut dyn RngCore) -> Self {
        loop {
            let mut bytes = [0u8; PRIVATE_KEY_BYTES];
            rng.fill_bytes(&mut bytes);
            if let Ok(pair) = Self::from_private(BigUint::from_bytes_be(&bytes)) {
                return pair;
            }
        }
    }

    /// A key pair from a known private exponent (test vectors).
    pub fn from_private(private: BigUint) -> Result<Self, DhKeyProblem> {
        let group = &*GROUP;
        let y = group.g.modpow(&private, &group.p);
        check_range(&y)?;
        Ok(Self {
            private,
            public: to_padded(&y),
        })
    }

    /// Our public key as it goes into C1/S1.
    pub fn public_key(&self) -> &[u8; DH_KEY_LEN] {
        &self.public
    }

    /// Checks the peer's key and computes the shared secret, left-aligned in 128 bytes with a
    /// zero tail.
    pub fn shared_secret(&self, peer: &[u8; DH_KEY_LEN]) -> Result<[u8; DH_KEY_LEN], DhKeyProblem> {
        check_public_key(peer)?;
        let group = &*GROUP;
        let s = BigUint::from_bytes_be(peer).modpow(&self.private, &group.p);
        let bytes = s.to_bytes_be();
        let mut out = [0u8; DH_KEY_LEN];
        out[..bytes.len()].copy_from_slice(&bytes);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn q_is_half_of_p_minus_one() {
        let group = &*GROUP;
        assert_eq!(&group.q * 2u8 + 1u8, group.p);
        assert_eq!(group.q.to_bytes_be()[..4], [0x7F, 0xFF, 0xFF, 0xFF]);
        assert_eq!(group.q.bits(), 1023);
    }

    #[test]
    fn range_edges_are_rejected() {
        let mut key = [0u8; DH_KEY_LEN];
        assert_eq!(check_public_key(&key), Err(DhKeyProblem::TooSmall));
        key[DH_KEY_LEN - 1] = 1;
        assert_eq!(check_public_key(&key), Err(DhKeyProblem::TooSmall));
        let mut p_minus_1 = PRIME;
        p_minus_1[DH_KEY_LEN - 1] -= 1;
        assert_eq!(check_public_key(&p_minus_1), Err(DhKeyProblem::TooLarge));
        assert_eq!(check_public_key(&PRIME), Err(DhKeyProblem::TooLarge));
        assert_eq!(
            check_public_key(&[0xFF; DH_KEY_LEN]),
            Err(DhKeyProblem::TooLarge)
        );
        key[DH_KEY_LEN - 1] = 2;
        assert_eq!(check_public_key(&key), Ok(()));
    }

    #[test]
    fn a_non_residue_fails_the_subgroup_test() {
        // P - 2 = -2 mod P; -1 is a non-residue (P ≡ 3 mod 4) and 2 a residue, so -2 is not.
        let mut key = PRIME;
        key[DH_KEY_LEN - 1] -= 2;
        assert_eq!(check_public_key(&key), Err(DhKeyProblem::NotInSubgroup));
    }

    #[test]
    fn generated_keys_pass_the_full_check_and_agree() {
        let mut rng = StdRng::seed_from_u64(1);
        let a = KeyPair::generate(&mut rng);
        let b = KeyPair::generate(&mut rng);
        check_public_key(a.public_key()).unwrap();
        check_public_key(b.public_key()).unwrap();
        assert_eq!(
            a.shared_secret(b.public_key()).unwrap(),
            b.shared_secret(a.public_key()).unwrap()
        );
        assert!(!format!("{a:?}").contains("private"));
    }

    #[test]
    fn short_values_are_padded_on_the_correct_side() {
        let y = BigUint::from(0x0102u16);
        let padded = to_padded(&y);
        assert_eq!(padded[DH_KEY_LEN - 2..], [1, 2]);
        assert!(padded[..DH_KEY_LEN - 2].iter().all(|&b| b == 0));
        // A small private key gives a short public key (2^8 = 256): left-padded too.
        let pair = KeyPair::from_private(BigUint::from(8u8)).unwrap();
        assert_eq!(pair.public_key()[DH_KEY_LEN - 2..], [1, 0]);
        // And a secret with leading zero bytes is left-aligned with a zero tail: with peer
        // key 4 = 2^2 and private 8 the secret is 2^16.
        let mut peer = [0u8; DH_KEY_LEN];
        peer[DH_KEY_LEN - 1] = 4;
        let secret = pair.shared_secret(&peer).unwrap();
        assert_eq!(secret[..3], [1, 0, 0]);
        assert!(secret[3..].iter().all(|&b| b == 0));
    }
}
