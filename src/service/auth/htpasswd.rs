//! Reading an htpasswd file: `user:hash` a line, bcrypt hashes only
//! (`htpasswd -B`). The weak formats Apache still writes (DES crypt, MD5
//! `$apr1$`, SHA1 `{SHA}`, plain text) are refused with the command that
//! re-hashes the user, never accepted quietly.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// Above this cost one login takes seconds (each step doubles it; 10 is
/// about 50 ms); `htpasswd -B -C` allows at most 17 too.
pub(super) const MAX_COST: u32 = 17;

/// The users of one file: name -> bcrypt hash.
#[derive(Debug)]
pub(super) struct Users {
    pub(super) by_name: HashMap<String, Arc<str>>,
    /// The highest cost in the file: an unknown user is checked against a
    /// hash of this cost, so their answer takes as long.
    pub(super) cost: u32,
}

/// Parses `text`, the contents of `file`; an error names the line or
/// user and how to mend it.
pub(super) fn parse(text: &str, file: &Path) -> Result<Users, String> {
    let file = file.display();
    let mut by_name = HashMap::new();
    let mut cost = 4;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((user, hash)) = line.split_once(':') else {
            return Err(format!(
                "line {} is not USER:HASH; make the file with `htpasswd -B -C 10 -c {file} USER`",
                n + 1
            ));
        };
        let rehash = format!("re-hash it with bcrypt: `htpasswd -B -C 10 {file} {user}`");
        if let Some(kind) = weak(hash) {
            return Err(format!(
                "user {user:?} has {kind}, which is refused as too weak; {rehash}"
            ));
        }
        let parts = hash
            .parse::<bcrypt::HashParts>()
            .map_err(|e| format!("user {user:?} has a malformed bcrypt hash ({e}); {rehash}"))?;
        if parts.get_cost() > MAX_COST {
            return Err(format!(
                "user {user:?} has a bcrypt cost of {}, over {MAX_COST}: each login would \
                 take seconds of CPU; {rehash}",
                parts.get_cost()
            ));
        }
        cost = cost.max(parts.get_cost());
        if by_name.insert(user.to_string(), Arc::from(hash)).is_some() {
            return Err(format!(
                "user {user:?} is listed twice; keep one line for them"
            ));
        }
    }
    if by_name.is_empty() {
        return Err(format!(
            "holds no users; add one with `htpasswd -B -C 10 {file} USER`"
        ));
    }
    Ok(Users { by_name, cost })
}

/// What a hash that is not bcrypt is, in the words of the message.
fn weak(hash: &str) -> Option<&'static str> {
    let bcrypt = ["$2y$", "$2b$", "$2a$"];
    if bcrypt.iter().any(|p| hash.starts_with(p)) {
        return None;
    }
    let des = hash.len() == 13
        && hash
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/');
    Some(if hash.starts_with("$apr1$") {
        "an MD5 hash ($apr1$)"
    } else if hash.starts_with("{SHA}") {
        "a SHA1 hash ({SHA})"
    } else if hash.starts_with("$1$") {
        "an MD5-crypt hash ($1$)"
    } else if hash.starts_with("$5$") || hash.starts_with("$6$") {
        "a SHA-crypt hash ($5$/$6$), which is not supported"
    } else if hash.starts_with('$') {
        "a hash of a format not supported"
    } else if des {
        "a crypt (DES) hash"
    } else {
        "a plain-text password (or a format not known)"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "$2y$05$mm2F.ZzYl.hJnlTNnTpMSesAEKFpzSxuldMVVbzWvYQSAFw8NBaiS";

    fn err(text: &str) -> String {
        parse(text, Path::new("/etc/users")).unwrap_err()
    }

    #[test]
    fn reads_bcrypt_users_and_skips_comments() {
        let users = parse(&format!("# team\n\nalice:{ALICE}\r\n"), Path::new("u")).unwrap();
        assert_eq!(&*users.by_name["alice"], ALICE);
        assert_eq!(users.cost, 5);
    }

    #[test]
    fn refuses_weak_formats_naming_user_and_fix() {
        for (hash, says) in [
            ("$apr1$abc$defghijklmnopqrstuvwx.", "MD5 hash ($apr1$)"),
            ("{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "SHA1"),
            ("rqXexS6ZhobKA", "crypt (DES)"),
            ("secret", "plain-text"),
            ("$6$salt$hash", "SHA-crypt"),
        ] {
            let e = err(&format!("bob:{hash}"));
            assert!(e.contains(says), "{e}");
            assert!(e.contains("user \"bob\""), "{e}");
            assert!(e.contains("htpasswd -B -C 10 /etc/users bob"), "{e}");
        }
        assert!(err("bob").contains("line 1 is not USER:HASH"));
        assert!(err("").contains("holds no users"));
        assert!(err("bob:$2y$05$short").contains("malformed"));
        let costly = ALICE.replacen("$05$", "$20$", 1);
        assert!(err(&format!("bob:{costly}")).contains("over 17"));
        assert!(err(&format!("a:{ALICE}\na:{ALICE}")).contains("twice"));
    }
}
