//! The account key and what ACME signs with it: JWS (RFC 7515) in the
//! flattened JSON form RFC 8555 §6.2 asks for, ES256 only (ECDSA P-256 with
//! SHA-256, `ring`), the JWK and its thumbprint (RFC 7638), the key
//! authorization (RFC 8555 §8.1); and base64, both alphabets.

use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

use super::AcmeError;

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn encode(bytes: &[u8], alphabet: &[u8; 64], pad: bool) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let chars = chunk.len() + 1;
        for i in 0..4 {
            if i < chars {
                out.push(char::from(alphabet[(n >> (18 - 6 * i)) as usize & 63]));
            } else if pad {
                out.push('=');
            }
        }
    }
    out
}

/// base64url without padding (RFC 7515 §2), as JWS and ACME use it.
pub(crate) fn base64url(bytes: &[u8]) -> String {
    encode(bytes, URL_SAFE, false)
}

/// Standard base64 with padding (RFC 4648 §4), as PEM uses it.
pub(crate) fn base64(bytes: &[u8]) -> String {
    encode(bytes, STANDARD, true)
}

/// Decodes base64url (padding optional); `None` on any other character.
#[cfg(test)]
pub(crate) fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let v = URL_SAFE.iter().position(|&a| a == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

/// `der` as a PEM block of `label`, lines of 64 characters.
pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    let body = base64(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// SHA-256 of `bytes`.
pub(crate) fn sha256(bytes: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .to_vec()
}

/// The JWK thumbprint (RFC 7638 §3) of a key whose canonical JSON (required
/// members only, sorted, no whitespace) is `canonical_jwk`.
pub(crate) fn thumbprint_of(canonical_jwk: &str) -> String {
    base64url(&sha256(canonical_jwk.as_bytes()))
}

/// The key authorization of a challenge (RFC 8555 §8.1): the token, a dot,
/// the account key's thumbprint.
pub(crate) fn key_authorization(token: &str, thumbprint: &str) -> String {
    format!("{token}.{thumbprint}")
}

/// The ACME account key: ECDSA P-256, kept as PKCS#8 in the state directory.
pub(crate) struct AccountKey {
    pair: EcdsaKeyPair,
    pkcs8: Vec<u8>,
    rng: SystemRandom,
}

impl AccountKey {
    /// A new random key.
    pub(crate) fn generate() -> Result<AccountKey, AcmeError> {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| AcmeError::new("could not generate the ACME account key"))?;
        AccountKey::from_pkcs8(doc.as_ref())
    }

    /// The key from its PKCS#8 DER.
    pub(crate) fn from_pkcs8(der: &[u8]) -> Result<AccountKey, AcmeError> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
            .map_err(|e| AcmeError::new(format!("the ACME account key is not a P-256 PKCS#8 key ({e}): delete it to make a new account")))?;
        Ok(AccountKey {
            pair,
            pkcs8: der.to_vec(),
            rng,
        })
    }

    pub(crate) fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public key as the canonical JWK (RFC 7638: `crv`, `kty`, `x`,
    /// `y`, in that order, no whitespace).
    pub(crate) fn jwk(&self) -> String {
        // Uncompressed point: 0x04, X (32 bytes), Y (32 bytes).
        let point = self.pair.public_key().as_ref();
        let (x, y) = point[1..].split_at(32);
        format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            base64url(x),
            base64url(y)
        )
    }

    /// The JWK thumbprint (RFC 7638), the second half of every key
    /// authorization.
    pub(crate) fn thumbprint(&self) -> String {
        thumbprint_of(&self.jwk())
    }

    /// The request body for `url`: a flattened JWS over `payload` (`None`:
    /// the empty payload of a POST-as-GET), signed with this key, with the
    /// account URL as `kid` or, before there is an account, the `jwk`.
    pub(crate) fn sign(
        &self,
        url: &str,
        nonce: &str,
        kid: Option<&str>,
        payload: Option<&Value>,
    ) -> Result<Vec<u8>, AcmeError> {
        let mut protected = json!({ "alg": "ES256", "nonce": nonce, "url": url });
        match kid {
            Some(kid) => protected["kid"] = json!(kid),
            None => {
                let jwk: Value = serde_json::from_str(&self.jwk())
                    .map_err(|e| AcmeError::new(format!("JWK: {e}")))?;
                protected["jwk"] = jwk;
            }
        }
        let protected = base64url(protected.to_string().as_bytes());
        let payload = match payload {
            Some(value) => base64url(value.to_string().as_bytes()),
            None => String::new(),
        };
        let signing_input = format!("{protected}.{payload}");
        let signature = self
            .pair
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| AcmeError::new("could not sign an ACME request"))?;
        let body = json!({
            "protected": protected,
            "payload": payload,
            "signature": base64url(signature.as_ref()),
        });
        Ok(body.to_string().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};

    #[test]
    fn base64_both_alphabets_match_rfc_4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded);
            assert_eq!(base64url(plain.as_bytes()), encoded.trim_end_matches('='));
            assert_eq!(base64url_decode(encoded).as_deref(), Some(plain.as_bytes()));
        }
        // The two alphabets differ in 62 and 63: `+/` against `-_`.
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
        assert_eq!(base64url_decode("-_8").as_deref(), Some(&[0xfb, 0xff][..]));
        assert_eq!(base64url_decode("+/8"), None);
    }

    /// RFC 7638 §3.1: the example RSA key's thumbprint.
    #[test]
    fn thumbprint_of_rfc_7638_example() {
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let canonical = format!(r#"{{"e":"AQAB","kty":"RSA","n":"{n}"}}"#);
        assert_eq!(
            thumbprint_of(&canonical),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn key_authorization_is_token_dot_thumbprint() {
        let key = AccountKey::generate().expect("key");
        let thumbprint = key.thumbprint();
        assert_eq!(thumbprint.len(), 43, "32 bytes of SHA-256 in base64url");
        assert_eq!(
            key_authorization("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA", &thumbprint),
            format!("evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA.{thumbprint}")
        );
        // The JWK is canonical: its members sorted, no whitespace, and the
        // same key read back from PKCS#8 has the same thumbprint.
        let jwk = key.jwk();
        assert!(
            jwk.starts_with(r#"{"crv":"P-256","kty":"EC","x":""#),
            "{jwk}"
        );
        assert!(!jwk.contains(' '));
        let again = AccountKey::from_pkcs8(key.pkcs8()).expect("reload");
        assert_eq!(again.thumbprint(), thumbprint);
    }

    #[test]
    fn a_jws_verifies_with_the_jwk_it_carries() {
        let key = AccountKey::generate().expect("key");
        let payload = json!({"termsOfServiceAgreed": true});
        let body = key
            .sign("https://ca.test/new-acct", "nonce-1", None, Some(&payload))
            .expect("sign");
        let jws: Value = serde_json::from_slice(&body).expect("json");
        let protected_b64 = jws["protected"].as_str().expect("protected");
        let protected: Value =
            serde_json::from_slice(&base64url_decode(protected_b64).expect("b64")).expect("json");
        assert_eq!(protected["alg"], "ES256");
        assert_eq!(protected["nonce"], "nonce-1");
        assert_eq!(protected["url"], "https://ca.test/new-acct");
        assert!(protected.get("kid").is_none());
        let x = base64url_decode(protected["jwk"]["x"].as_str().expect("x")).expect("x");
        let y = base64url_decode(protected["jwk"]["y"].as_str().expect("y")).expect("y");
        let point = [&[4u8][..], &x, &y].concat();
        let payload_b64 = jws["payload"].as_str().expect("payload");
        let signature = base64url_decode(jws["signature"].as_str().expect("sig")).expect("b64");
        assert_eq!(signature.len(), 64, "ES256 is r || s, 32 bytes each");
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point)
            .verify(
                format!("{protected_b64}.{payload_b64}").as_bytes(),
                &signature,
            )
            .expect("verifies");
        // POST-as-GET: an empty payload, and the account URL as kid.
        let body = key
            .sign(
                "https://ca.test/order/1",
                "n2",
                Some("https://ca.test/acct/7"),
                None,
            )
            .expect("sign");
        let jws: Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(jws["payload"], "");
        let protected: Value = serde_json::from_slice(
            &base64url_decode(jws["protected"].as_str().expect("p")).expect("b64"),
        )
        .expect("json");
        assert_eq!(protected["kid"], "https://ca.test/acct/7");
        assert!(protected.get("jwk").is_none());
    }
}
