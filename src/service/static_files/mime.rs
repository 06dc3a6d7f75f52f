//! Content-Type from the file extension.

use std::borrow::Cow;
use std::path::Path;

const FALLBACK: &str = "application/octet-stream";

/// The `Content-Type` for `path`; textual types are declared UTF-8 so browsers
/// do not guess the encoding. Unknown: `application/octet-stream`.
pub fn content_type(path: &Path) -> Cow<'static, str> {
    content_type_or(path, FALLBACK)
}

/// As [`content_type`], with `no_extension` (`static.default_type`) for
/// a file whose name has no extension.
pub fn content_type_or<'a>(path: &Path, no_extension: &'a str) -> Cow<'a, str> {
    if path.extension().is_none() {
        return Cow::Borrowed(no_extension);
    }
    let Some(mime) = mime_guess::from_path(path).first() else {
        return Cow::Borrowed(FALLBACK);
    };
    let textual = mime.type_() == mime_guess::mime::TEXT
        || matches!(
            mime.essence_str(),
            "application/javascript" | "application/json" | "image/svg+xml"
        );
    if textual && mime.get_param(mime_guess::mime::CHARSET).is_none() {
        Cow::Owned(format!("{}; charset=utf-8", mime.essence_str()))
    } else {
        Cow::Owned(mime.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ct(p: &str) -> String {
        content_type(Path::new(p)).into_owned()
    }

    #[test]
    fn textual_types_get_utf8() {
        assert_eq!(ct("index.html"), "text/html; charset=utf-8");
        assert_eq!(ct("style.css"), "text/css; charset=utf-8");
        assert_eq!(ct("notes.txt"), "text/plain; charset=utf-8");
        assert_eq!(ct("app.mjs"), "application/javascript; charset=utf-8");
        assert_eq!(ct("data.json"), "application/json; charset=utf-8");
        assert_eq!(ct("conveyor.svg"), "image/svg+xml; charset=utf-8");
        assert!(ct("app.js").ends_with("javascript; charset=utf-8"));
    }

    #[test]
    fn binary_types_have_no_charset() {
        assert_eq!(ct("photo.png"), "image/png");
        assert_eq!(ct("photo.JPG"), "image/jpeg");
        assert_eq!(ct("module.wasm"), "application/wasm");
    }

    #[test]
    fn unknown_is_octet_stream() {
        assert_eq!(ct("README"), FALLBACK);
        assert_eq!(ct("file.zzzunknown"), FALLBACK);
        assert_eq!(ct("dir/"), FALLBACK);
    }

    #[test]
    fn no_extension_gets_the_default_type() {
        let text = "text/plain; charset=utf-8";
        assert_eq!(content_type_or(Path::new("docs/README"), text), text);
        assert_eq!(content_type_or(Path::new(".profile"), text), text);
        assert_eq!(content_type_or(Path::new("a.zzzunknown"), text), FALLBACK);
        assert_eq!(
            content_type_or(Path::new("a.css"), text),
            "text/css; charset=utf-8"
        );
    }
}
