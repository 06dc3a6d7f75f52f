//! `[[headers]]` rules: folded into a file's prebuilt head once per cached
//! version (so a hit costs nothing more), and applied to error responses by
//! the rules that say `errors = true`.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

use crate::config::HeaderRule;

use super::cache::FileInfo;

/// Applies the `rules` matching the file (its path relative to `root`) to
/// its head and its encoded variants': called once when the file's
/// version is read.
pub(super) fn apply_rules(rules: &[HeaderRule], root: &Path, info: &mut FileInfo) {
    if rules.is_empty() {
        return;
    }
    let relative = info.path.strip_prefix(root).unwrap_or(&info.path);
    let relative = relative.to_string_lossy();
    let matching: Vec<&HeaderRule> = rules.iter().filter(|r| r.path.matches(&relative)).collect();
    if matching.is_empty() {
        return;
    }
    fold(info, &matching);
    for variant in &mut info.variants {
        // Built just now for this info alone: nothing else holds it yet.
        if let Some(v) = Arc::get_mut(&mut variant.info) {
            fold(v, &matching);
        }
    }
}

/// The fields of the `rules` with `errors = true` matching `url_path`:
/// empty (and no allocation) when no such rule exists. A rule's `Vary`
/// adds to any other (the response's own `Vary` lines stay).
pub(super) fn error_fields(rules: &[HeaderRule], url_path: &str) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = Vec::new();
    for rule in rules.iter().filter(|r| r.errors) {
        if !rule.path.matches(url_path) {
            continue;
        }
        fields.retain(|(n, _)| !rule.remove.iter().any(|r| r.eq_ignore_ascii_case(n)));
        for (name, value) in &rule.set {
            if !is_vary(name) {
                fields.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            }
            fields.push((name.clone(), value.clone()));
        }
        fields.extend(rule.add.iter().cloned());
    }
    fields
}

fn is_vary(name: &str) -> bool {
    name.eq_ignore_ascii_case("vary")
}

/// Adds the comma-separated `tokens` to `list`, each once (case-insensitive).
fn merge_tokens(list: &mut Vec<String>, tokens: &str) {
    for token in tokens.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if !list.iter().any(|t| t.eq_ignore_ascii_case(token)) {
            list.push(token.to_string());
        }
    }
}

/// One field of a head being rewritten, and whether a rule wrote it.
struct RewrittenField {
    name: String,
    value: String,
    from_rule: bool,
}

/// Rewrites `info.head_fields` by the rules, in order; the fields rules
/// wrote also go to `info.rule_fields`, for the 206 and 304 heads. A
/// rule's `Vary` (set or add alike) is merged into the server's one line
/// (`Vary: Accept-Encoding, Cookie`), never in its place: the config
/// refuses rules that remove it or touch the encoding and framing fields.
fn fold(info: &mut FileInfo, rules: &[&HeaderRule]) {
    let text = String::from_utf8_lossy(&info.head_fields).into_owned();
    let mut lines: Vec<RewrittenField> = text
        .split("\r\n")
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| RewrittenField {
            name: n.to_string(),
            value: v.to_string(),
            from_rule: false,
        })
        .collect();
    let mut rule_vary: Vec<String> = Vec::new();
    info.rule_overrides.clear();
    for rule in rules {
        let names = rule
            .remove
            .iter()
            .chain(rule.set.iter().map(|(name, _)| name))
            .filter(|name| !is_vary(name));
        info.rule_overrides.extend(names.cloned());
        lines.retain(|l| !rule.remove.iter().any(|r| r.eq_ignore_ascii_case(&l.name)));
        for (name, _) in rule.set.iter().filter(|(name, _)| !is_vary(name)) {
            lines.retain(|l| !l.name.eq_ignore_ascii_case(name));
        }
        for (name, value) in rule.set.iter().chain(&rule.add) {
            if is_vary(name) {
                merge_tokens(&mut rule_vary, value);
                continue;
            }
            lines.push(RewrittenField {
                name: name.clone(),
                value: value.clone(),
                from_rule: true,
            });
        }
    }
    // The server's Vary tokens, then the rules' not among them.
    let mut vary: Vec<String> = Vec::new();
    if let Some(line) = lines.iter().find(|l| is_vary(&l.name)) {
        merge_tokens(&mut vary, &line.value);
    }
    let server_vary = vary.len();
    for token in &rule_vary {
        merge_tokens(&mut vary, token);
    }
    let added = vary[server_vary..].join(", ");
    info.head_fields.clear();
    info.rule_fields.clear();
    for line in &lines {
        if is_vary(&line.name) {
            push_field(&mut info.head_fields, &line.name, &vary.join(", "));
            continue;
        }
        push_field(&mut info.head_fields, &line.name, &line.value);
        if line.name.eq_ignore_ascii_case("content-type") {
            // 206 heads write the content type themselves.
            info.content_type.clone_from(&line.value);
        } else if line.from_rule {
            push_field(&mut info.rule_fields, &line.name, &line.value);
        }
    }
    if !added.is_empty() {
        if server_vary == 0 {
            push_field(&mut info.head_fields, "Vary", &added);
        }
        // The 206 and 304 heads write the server's Vary themselves.
        push_field(&mut info.rule_fields, "Vary", &added);
    }
}

fn push_field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `fields` without those the rules removed or replaced for `info`:
/// borrowed as they are (no allocation) when no rule did.
pub(super) fn without_overridden<'f, 'a>(
    info: &FileInfo,
    fields: &'f [(&'a str, &'a str)],
) -> Cow<'f, [(&'a str, &'a str)]> {
    if info.rule_overrides.is_empty() {
        return Cow::Borrowed(fields);
    }
    let overridden = |name: &str| {
        info.rule_overrides
            .iter()
            .any(|o| o.eq_ignore_ascii_case(name))
    };
    fields
        .iter()
        .filter(|(name, _)| !overridden(name))
        .copied()
        .collect()
}
