//! The BitTorrent v1 info hash: 20 bytes, written as 40 lowercase hex characters.

use std::fmt;
use std::str::FromStr;

/// A BitTorrent v1 info hash (SHA-1 of the bencoded `info` dictionary).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InfoHash([u8; 20]);

/// Why a string is not an info hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidInfoHash(String);

impl fmt::Display for InvalidInfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not an info hash (40 lowercase hex characters): {:?}", self.0)
    }
}

impl std::error::Error for InvalidInfoHash {}

impl InfoHash {
    /// Wraps 20 raw bytes.
    pub fn from_bytes(bytes: [u8; 20]) -> Self {
        InfoHash(bytes)
    }

    /// Parses exactly 40 lowercase hex characters, the API's only accepted form.
    pub fn from_hex(s: &str) -> Result<Self, InvalidInfoHash> {
        let invalid = || InvalidInfoHash(s.chars().take(64).collect());
        if s.len() != 40 {
            return Err(invalid());
        }
        let mut out = [0u8; 20];
        for (i, pair) in s.as_bytes().chunks(2).enumerate() {
            let hi = lower_hex_digit(pair[0]).ok_or_else(invalid)?;
            let lo = lower_hex_digit(pair[1]).ok_or_else(invalid)?;
            out[i] = hi << 4 | lo;
        }
        Ok(InfoHash(out))
    }

    /// Parses 40 hex characters in either case (for hashes a person typed).
    pub fn from_hex_any_case(s: &str) -> Result<Self, InvalidInfoHash> {
        Self::from_hex(&s.to_ascii_lowercase()).map_err(|_| InvalidInfoHash(s.chars().take(64).collect()))
    }

    /// The 20 raw bytes (as sent in tracker requests).
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }
}

fn lower_hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash({self})")
    }
}

impl FromStr for InfoHash {
    type Err = InvalidInfoHash;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_hex(s)
    }
}

impl serde::Serialize for InfoHash {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for InfoHash {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        InfoHash::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_lowercase_hex() {
        let s = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(InfoHash::from_hex(s).unwrap().to_string(), s);
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "",
            "0123456789ABCDEF0123456789abcdef01234567",
            "0123456789abcdef0123456789abcdef0123456",
            "0123456789abcdef0123456789abcdef012345678",
            "0123456789abcdef0123456789abcdef0123456g",
            "é123456789abcdef0123456789abcdef0123456",
        ] {
            assert!(InfoHash::from_hex(bad).is_err(), "{bad:?} accepted");
        }
        assert!(InfoHash::from_hex_any_case("0123456789ABCDEF0123456789abcdef01234567").is_ok());
    }
}
