//! ACME Renewal Information (RFC 9773): a certificate's id at the CA's
//! `renewalInfo` resource, and the suggested renewal window it answers.

use std::time::{Duration, SystemTime};

use serde_json::Value;

use super::jws::base64url;
use super::x509::{civil_time, Leaf};

/// The certificate's ARI id (RFC 9773 §4.1): base64url of the authority
/// key identifier's `keyIdentifier`, a dot, base64url of the serial
/// number's DER content octets.
pub(crate) fn cert_id(authority_key_id: &[u8], serial: &[u8]) -> String {
    format!("{}.{}", base64url(authority_key_id), base64url(serial))
}

/// The id of `leaf`, if it has an authority key identifier.
pub(crate) fn leaf_id(leaf: &Leaf) -> Option<String> {
    Some(cert_id(leaf.authority_key_id.as_deref()?, &leaf.serial))
}

/// The `suggestedWindow` of a renewal-information answer, if well formed
/// (start before end).
pub(crate) fn suggested_window(answer: &Value) -> Option<(SystemTime, SystemTime)> {
    let window = &answer["suggestedWindow"];
    let start = rfc3339(window["start"].as_str()?)?;
    let end = rfc3339(window["end"].as_str()?)?;
    (start < end).then_some((start, end))
}

/// An RFC 3339 timestamp (`2025-01-02T04:00:00Z`, fractions and offsets
/// allowed; fractions are dropped).
pub(crate) fn rfc3339(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = text.get(range)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let at = civil_time(
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    )?;
    let mut rest = &text[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &frac[digits..];
    }
    match rest {
        "Z" | "z" => Some(at),
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let offset = rest.get(1..)?;
            let (h, m) = offset.split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            let seconds = h.parse::<u64>().ok()? * 3600 + m.parse::<u64>().ok()? * 60;
            let offset = Duration::from_secs(seconds);
            // Local time = UTC + offset, so UTC = local - offset.
            if sign > 0 {
                at.checked_sub(offset)
            } else {
                at.checked_add(offset)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// RFC 9773 §4.1's example: keyIdentifier 69:88:5B:6B:87:46:40:41:
    /// E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4, serial 00:87:65:43:21.
    #[test]
    fn cert_id_of_rfc_9773_example() {
        let aki = [
            0x69, 0x88, 0x5b, 0x6b, 0x87, 0x46, 0x40, 0x41, 0xe1, 0xb3, 0x7b, 0x84, 0x7b, 0xa0,
            0xae, 0x2c, 0xde, 0x01, 0xc8, 0xd4,
        ];
        let serial = [0x00, 0x87, 0x65, 0x43, 0x21];
        assert_eq!(
            cert_id(&aki, &serial),
            "aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE"
        );
    }

    #[test]
    fn the_suggested_window_is_read_and_checked() {
        let answer = json!({
            "suggestedWindow": {"start": "2025-01-02T04:00:00Z", "end": "2025-01-03T04:00:00.5+01:00"},
            "explanationURL": "https://acme.example.com/docs/ari"
        });
        let (start, end) = suggested_window(&answer).expect("window");
        assert_eq!(start, civil_time(2025, 1, 2, 4, 0, 0).expect("t"));
        assert_eq!(end, civil_time(2025, 1, 3, 3, 0, 0).expect("t"));
        let backwards = json!({"suggestedWindow": {"start": "2025-01-03T00:00:00Z", "end": "2025-01-02T00:00:00Z"}});
        assert_eq!(suggested_window(&backwards), None);
        assert_eq!(suggested_window(&json!({})), None);
        assert_eq!(rfc3339("2025-01-02"), None);
        assert_eq!(rfc3339("2025-01-02T04:00:00"), None);
        assert_eq!(rfc3339("2025-01-02T04:00:00.Z"), None);
    }
}
