//! The few fields of an issued certificate the client needs, read from its
//! DER by a short walker: the validity (when to renew), the DNS names (is it
//! the certificate for these domains), the public key (does the stored key
//! belong to it), and the serial and authority key identifier (its RFC 9773
//! renewal-information id). A full X.509 parser would be a new dependency
//! tree (x509-parser brings nom, asn1-rs, der-parser and more) for six
//! fields of a certificate we just received from the CA and that rustls
//! verifies anyway when it is served.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the client reads from a leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Leaf {
    pub(crate) not_before: SystemTime,
    pub(crate) not_after: SystemTime,
    /// The serial number's DER content octets (a leading zero included).
    pub(crate) serial: Vec<u8>,
    /// The authority key identifier's `keyIdentifier`, if present.
    pub(crate) authority_key_id: Option<Vec<u8>>,
    /// The subjectAltName's dNSName entries.
    pub(crate) dns_names: Vec<String>,
    /// The subjectPublicKey bits (an EC key: the uncompressed point).
    pub(crate) public_key: Vec<u8>,
}

const SEQUENCE: u8 = 0x30;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
/// id-ce-subjectAltName, 2.5.29.17.
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
/// id-ce-authorityKeyIdentifier, 2.5.29.35.
const AUTHORITY_KEY_ID: &[u8] = &[0x55, 0x1d, 0x23];

/// A cursor over DER elements (single-byte tags, definite lengths).
struct Der<'a> {
    rest: &'a [u8],
}

impl<'a> Der<'a> {
    fn new(bytes: &'a [u8]) -> Der<'a> {
        Der { rest: bytes }
    }

    fn peek_tag(&self) -> Option<u8> {
        self.rest.first().copied()
    }

    fn next(&mut self) -> Option<(u8, &'a [u8])> {
        let (&tag, rest) = self.rest.split_first()?;
        if tag & 0x1f == 0x1f {
            return None;
        }
        let (&first, mut rest) = rest.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            rest = &rest[n..];
            len
        };
        if rest.len() < len {
            return None;
        }
        let (content, after) = rest.split_at(len);
        self.rest = after;
        Some((tag, content))
    }

    fn expect(&mut self, tag: u8) -> Option<&'a [u8]> {
        let (found, content) = self.next()?;
        (found == tag).then_some(content)
    }
}

/// The fields of `der`, a certificate; `None` if it is not one.
pub(crate) fn parse_leaf(der: &[u8]) -> Option<Leaf> {
    let certificate = Der::new(der).expect(SEQUENCE)?;
    let mut tbs = Der::new(Der::new(certificate).expect(SEQUENCE)?);
    if tbs.peek_tag() == Some(0xa0) {
        tbs.next()?; // version
    }
    let serial = tbs.expect(INTEGER)?.to_vec();
    tbs.expect(SEQUENCE)?; // signature algorithm
    tbs.expect(SEQUENCE)?; // issuer
    let mut validity = Der::new(tbs.expect(SEQUENCE)?);
    let not_before = read_time(validity.next()?)?;
    let not_after = read_time(validity.next()?)?;
    tbs.expect(SEQUENCE)?; // subject
    let mut spki = Der::new(tbs.expect(SEQUENCE)?);
    spki.expect(SEQUENCE)?;
    let public_key = spki.expect(BIT_STRING)?.get(1..)?.to_vec();
    let mut leaf = Leaf {
        not_before,
        not_after,
        serial,
        authority_key_id: None,
        dns_names: Vec::new(),
        public_key,
    };
    while let Some((tag, content)) = tbs.next() {
        if tag == 0xa3 {
            read_extensions(Der::new(content).expect(SEQUENCE)?, &mut leaf)?;
        }
    }
    Some(leaf)
}

fn read_extensions(extensions: &[u8], leaf: &mut Leaf) -> Option<()> {
    let mut extensions = Der::new(extensions);
    while let Some(extension) = extensions.next() {
        let mut extension = Der::new(extension.1);
        let oid = extension.expect(OID)?;
        if extension.peek_tag() == Some(BOOLEAN) {
            extension.next()?;
        }
        let value = extension.expect(OCTET_STRING)?;
        if oid == SUBJECT_ALT_NAME {
            let mut names = Der::new(Der::new(value).expect(SEQUENCE)?);
            while let Some((tag, name)) = names.next() {
                if tag == 0x82 {
                    leaf.dns_names
                        .push(String::from_utf8_lossy(name).into_owned());
                }
            }
        } else if oid == AUTHORITY_KEY_ID {
            let mut fields = Der::new(Der::new(value).expect(SEQUENCE)?);
            while let Some((tag, field)) = fields.next() {
                if tag == 0x80 {
                    leaf.authority_key_id = Some(field.to_vec());
                }
            }
        }
    }
    Some(())
}

fn read_time((tag, content): (u8, &[u8])) -> Option<SystemTime> {
    let text = std::str::from_utf8(content).ok()?;
    let text = text.strip_suffix('Z')?;
    let (year, rest) = match tag {
        // `get`, not slicing: a multi-byte character from the CA must
        // not split a slice (a panic), only fail the parse.
        UTC_TIME if text.len() == 12 => {
            let yy: i64 = text.get(..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, text.get(2..)?)
        }
        GENERALIZED_TIME if text.len() == 14 => (text.get(..4)?.parse().ok()?, text.get(4..)?),
        _ => return None,
    };
    let field = |i: usize| -> Option<i64> {
        let digits = rest.get(i..i + 2)?;
        digits
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| digits.parse().ok())?
    };
    civil_time(year, field(0)?, field(2)?, field(4)?, field(6)?, field(8)?)
}

/// A UTC calendar date and time as a `SystemTime`; `None` if a field is out
/// of range.
pub(crate) fn civil_time(
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
) -> Option<SystemTime> {
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
        || hour < 0
        || minute < 0
        || second < 0
    {
        return None;
    }
    // Days from 1970-01-01 (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
    if seconds >= 0 {
        UNIX_EPOCH.checked_add(Duration::from_secs(seconds.unsigned_abs()))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_secs(seconds.unsigned_abs()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_times_become_unix_seconds() {
        let at = |t: SystemTime| t.duration_since(UNIX_EPOCH).expect("after").as_secs();
        assert_eq!(at(civil_time(1970, 1, 1, 0, 0, 0).expect("t")), 0);
        assert_eq!(at(civil_time(2000, 3, 1, 0, 0, 0).expect("t")), 951_868_800);
        assert_eq!(
            at(civil_time(2025, 1, 2, 4, 0, 0).expect("t")),
            1_735_790_400
        );
        assert!(civil_time(2025, 13, 1, 0, 0, 0).is_none());
        assert_eq!(
            read_time((UTC_TIME, b"491231235959Z")),
            civil_time(2049, 12, 31, 23, 59, 59)
        );
        assert_eq!(
            read_time((UTC_TIME, b"500101000000Z")),
            civil_time(1950, 1, 1, 0, 0, 0)
        );
        assert_eq!(
            read_time((GENERALIZED_TIME, b"20500101000000Z")),
            civil_time(2050, 1, 1, 0, 0, 0)
        );
        assert_eq!(read_time((GENERALIZED_TIME, b"2050010100000Z")), None);
    }

    #[test]
    fn an_rcgen_certificate_reads_back() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec!["a.test".to_string(), "b.test".to_string()])
                .expect("params");
        params.not_before = rcgen::date_time_ymd(2025, 1, 2);
        params.not_after = rcgen::date_time_ymd(2051, 6, 30);
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[
            0x00, 0x87, 0x65, 0x43, 0x21,
        ]));
        let cert = params.self_signed(&key).expect("cert");
        let leaf = parse_leaf(cert.der()).expect("parses");
        assert_eq!(leaf.dns_names, ["a.test", "b.test"]);
        assert_eq!(leaf.not_before, civil_time(2025, 1, 2, 0, 0, 0).expect("t"));
        assert_eq!(leaf.not_after, civil_time(2051, 6, 30, 0, 0, 0).expect("t"));
        assert_eq!(leaf.serial, [0x00, 0x87, 0x65, 0x43, 0x21]);
        assert_eq!(leaf.public_key, key.public_key_raw());
        assert!(parse_leaf(&cert.der()[..40]).is_none());
        assert!(parse_leaf(b"not a certificate").is_none());
    }

    /// What the CA sends is parsed without panicking, however cut or
    /// garbled: every prefix of a real certificate, and every byte of it
    /// changed to a few odd values.
    #[test]
    fn garbled_certificates_never_panic() {
        assert_eq!(read_time((UTC_TIME, "a\u{e9}010100000Z".as_bytes())), None);
        assert_eq!(
            read_time((GENERALIZED_TIME, "201\u{e9}010100000Z".as_bytes())),
            None
        );
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let params = rcgen::CertificateParams::new(vec!["a.test".to_string()]).expect("params");
        let der = params.self_signed(&key).expect("cert").der().to_vec();
        assert!(parse_leaf(&der).is_some());
        for end in 0..der.len() {
            let _ = parse_leaf(&der[..end]);
        }
        for i in 0..der.len() {
            for value in [0x00, 0x7f, 0x80, 0x84, 0xc3, 0xff] {
                let mut garbled = der.clone();
                garbled[i] = value;
                let _ = parse_leaf(&garbled);
            }
        }
    }
}
