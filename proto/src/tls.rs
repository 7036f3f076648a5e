//! What both ends of the agent API's TLS share: a certificate's SHA-256 fingerprint (what the
//! controller pins instead of trusting the web PKI), PEM files, and a self-signed certificate made
//! on the spot (by the agent at its first start, or by `odseed ec2 provision` for a pool).
//!
//! The certificate is written here rather than with rcgen: rcgen 0.14 needs Rust 1.88 and 0.13
//! pulls `time`, whose releases need 1.88 too, while the agent builds with Debian's Rust 1.85. A
//! pinned self-signed certificate needs no extension, so its DER is a few fixed fields.

use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::fmt;
use std::path::Path;

/// A certificate's SHA-256, over its DER.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    pub fn of(der: &[u8]) -> Fingerprint {
        let d = ring::digest::digest(&ring::digest::SHA256, der);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Fingerprint(out)
    }

    /// 64 hex digits, either case, optionally in pairs separated by `:` (as `openssl x509
    /// -fingerprint -sha256` prints it).
    pub fn parse(text: &str) -> Result<Fingerprint, String> {
        let hex: String = text.trim().chars().filter(|c| *c != ':').collect();
        let bad = || "not a SHA-256 fingerprint (64 hex digits, `:` allowed between pairs)".to_string();
        if hex.len() != 64 || !hex.is_ascii() {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
        }
        Ok(Fingerprint(out))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// PEM files larger than this are refused (a certificate chain and a key are a few KiB).
pub const MAX_PEM_BYTES: u64 = 64 * 1024;

/// The certificates in a PEM file, first the server's own.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = crate::fsutil::read_bounded(path, MAX_PEM_BYTES).map_err(|e| format!("cannot read: {e}"))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate: {e:?}"))?;
    if certs.is_empty() {
        return Err("holds no PEM certificate".into());
    }
    Ok(certs)
}

/// The private key in a PEM file (PKCS#8, SEC1 or PKCS#1).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = crate::fsutil::read_bounded(path, MAX_PEM_BYTES).map_err(|e| format!("cannot read: {e}"))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| format!("holds no PEM private key: {e:?}"))
}

/// `der` as PEM text under `label` (`CERTIFICATE`, `PRIVATE KEY`).
pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A new self-signed certificate (ECDSA P-256, named `common_name`, valid from 2000 to 9999: its
/// fingerprint, not its dates, is what is trusted) and its PKCS#8 private key, both DER.
pub fn self_signed(common_name: &str) -> Result<(Vec<u8>, Vec<u8>), String> {
    let rng = SystemRandom::new();
    let fail = |what: &str| format!("cannot make a certificate: {what}");
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).map_err(|_| fail("key"))?;
    let key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).map_err(|_| fail("key"))?;
    let mut serial = [0u8; 16];
    rng.fill(&mut serial).map_err(|_| fail("random"))?;
    serial[0] = (serial[0] & 0x7f) | 0x40; // positive, 16 bytes long
    let tbs = der::tbs_certificate(&serial, common_name, key.public_key().as_ref());
    let sig = key.sign(&rng, &tbs).map_err(|_| fail("signature"))?;
    Ok((der::certificate(&tbs, sig.as_ref()), pkcs8.as_ref().to_vec()))
}

/// The few DER structures of an X.509 v3 certificate without extensions (RFC 5280, section 4.1).
mod der {
    const SEQUENCE: u8 = 0x30;
    const SET: u8 = 0x31;
    const INTEGER: u8 = 0x02;
    const BIT_STRING: u8 = 0x03;
    const OID: u8 = 0x06;
    const UTF8_STRING: u8 = 0x0c;
    const UTC_TIME: u8 = 0x17;
    const GENERALIZED_TIME: u8 = 0x18;
    const EXPLICIT_0: u8 = 0xa0;
    const ECDSA_WITH_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    const EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    const PRIME256V1: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    const COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

    fn tlv(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let mut out = vec![tag];
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes = len.to_be_bytes();
            let skip = bytes.iter().take_while(|b| **b == 0).count();
            out.push(0x80 | (bytes.len() - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
        parts.iter().for_each(|p| out.extend_from_slice(p));
        out
    }

    fn bits(bytes: &[u8]) -> Vec<u8> {
        tlv(BIT_STRING, &[&[0], bytes])
    }

    fn algorithm() -> Vec<u8> {
        tlv(SEQUENCE, &[&tlv(OID, &[ECDSA_WITH_SHA256])])
    }

    pub(super) fn tbs_certificate(serial: &[u8], common_name: &str, public_key: &[u8]) -> Vec<u8> {
        let attr = tlv(SEQUENCE, &[&tlv(OID, &[COMMON_NAME]), &tlv(UTF8_STRING, &[common_name.as_bytes()])]);
        let name = tlv(SEQUENCE, &[&tlv(SET, &[&attr])]);
        let validity =
            tlv(SEQUENCE, &[&tlv(UTC_TIME, &[b"000101000000Z"]), &tlv(GENERALIZED_TIME, &[b"99991231235959Z"])]);
        let key_alg = tlv(SEQUENCE, &[&tlv(OID, &[EC_PUBLIC_KEY]), &tlv(OID, &[PRIME256V1])]);
        let spki = tlv(SEQUENCE, &[&key_alg, &bits(public_key)]);
        let version = tlv(EXPLICIT_0, &[&tlv(INTEGER, &[&[2]])]);
        tlv(SEQUENCE, &[&version, &tlv(INTEGER, &[serial]), &algorithm(), &name, &validity, &name, &spki])
    }

    pub(super) fn certificate(tbs: &[u8], signature: &[u8]) -> Vec<u8> {
        tlv(SEQUENCE, &[tbs, &algorithm(), &bits(signature)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_read_as_printed() {
        let f = Fingerprint::of(b"x");
        assert_eq!(Fingerprint::parse(&f.to_string()), Ok(f));
        let colons: Vec<String> = f.0.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(Fingerprint::parse(&colons.join(":")), Ok(f));
        for bad in ["", "abc", &"g".repeat(64), &"é".repeat(32)] {
            assert!(Fingerprint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_self_signed_certificate_is_valid_der_and_pem() {
        let (cert, key) = self_signed("odseed-agent").unwrap();
        // webpki parses it as an end-entity certificate and its signature verifies with its own key.
        let pem_cert = pem("CERTIFICATE", &cert);
        let back = CertificateDer::pem_slice_iter(pem_cert.as_bytes()).next().unwrap().unwrap();
        assert_eq!(back.as_ref(), &cert[..]);
        let pem_key = pem("PRIVATE KEY", &key);
        assert!(matches!(PrivateKeyDer::from_pem_slice(pem_key.as_bytes()), Ok(PrivateKeyDer::Pkcs8(_))));
        let (again, _) = self_signed("odseed-agent").unwrap();
        assert_ne!(Fingerprint::of(&cert), Fingerprint::of(&again), "a fresh key and serial each time");
    }
}
