//! Checks that need the machine rather than the file, made at start-up so
//! that a config file can be read and checked anywhere, and checks across
//! keys, made once the command line has had its say.

use super::{Config, ConfigError, Res};

impl Config {
    /// The root must be a directory we can list.
    pub fn check_root(&self) -> Res<()> {
        self.check_root_from("")
    }

    /// [`Self::check_root`], its messages saying where the root was set
    /// (`origin`, like "root in config/conveyor.toml"; "" leaves it out).
    pub fn check_root_from(&self, origin: &str) -> Res<()> {
        let root = self.root.display();
        let from = match origin {
            "" => String::new(),
            origin => format!(" (set by {origin})"),
        };
        let fix = "create it or pass ROOT on the command line";
        let refused = |why: String| ConfigError::new(format!("root \"{root}\" {why}{from}; {fix}"));
        let meta = std::fs::metadata(&self.root).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                refused("does not exist".into())
            } else {
                refused(format!("cannot be read ({e})"))
            }
        })?;
        if !meta.is_dir() {
            return Err(refused("is not a directory".into()));
        }
        std::fs::read_dir(&self.root).map_err(|e| refused(format!("cannot be read ({e})")))?;
        Ok(())
    }

    /// Every `static.error_pages` entry names a file beneath the root: a
    /// page that is not there would turn each such error into a bare one
    /// without a word.
    pub fn check_error_pages(&self) -> Res<()> {
        for (status, page) in &self.static_files.error_pages {
            let file = self.root.join(page.trim_start_matches('/'));
            match std::fs::metadata(&file) {
                Ok(meta) if meta.is_file() => {}
                found => {
                    let why = match found {
                        Ok(_) => "is not a regular file".to_string(),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            "does not exist".to_string()
                        }
                        Err(e) => format!("cannot be read ({e})"),
                    };
                    return Err(ConfigError::new(format!(
                        "static.error_pages: {status} = {page:?}, but {} {why}; create the \
                         page beneath the root, or remove the entry",
                        file.display()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Checks across keys, once the flags are applied: some listener
    /// (plain or TLS), and `tls.redirect_http` only with a TLS listener to
    /// redirect to.
    pub fn check_listeners(&self) -> Res<()> {
        if self.listen.specs().is_empty() && !self.tls.enabled() {
            return Err(ConfigError::new(
                "listen = [] and no tls.listen: the server would take no connections; give \
                 listen (like \"127.0.0.1:8080\"), or tls.listen to serve HTTPS alone",
            ));
        }
        if self.tls.redirect_http && !self.tls.enabled() {
            return Err(ConfigError::new(
                "tls.redirect_http = true, but there is no TLS listener to redirect to; set \
                 tls.listen (or --tls-cert and --tls-key), or remove redirect_http",
            ));
        }
        if self.tls.self_signed && !self.tls.certificates.is_empty() {
            return Err(ConfigError::new(
                "tls.self_signed = true and [[tls.certificates]] both give a certificate; \
                 keep the certificates and remove self_signed (it is for local tries only)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn listeners_and_redirects_need_each_other() {
        let mut c = Config::default();
        c.check_listeners().unwrap();
        c.listen = crate::config::ListenAddresses(Vec::new());
        let e = c.check_listeners().unwrap_err().to_string();
        assert!(e.starts_with("listen = [] and no tls.listen"), "{e}");
        c.tls.listen = vec!["127.0.0.1:8443".parse().unwrap()];
        c.check_listeners().unwrap();
        c.tls.listen.clear();
        c.listen = Config::default().listen;
        c.tls.redirect_http = true;
        let e = c.check_listeners().unwrap_err().to_string();
        assert!(e.starts_with("tls.redirect_http = true, but"), "{e}");
    }

    #[test]
    fn check_root_explains() {
        let mut c = Config {
            root: std::env::temp_dir(),
            ..Config::default()
        };
        c.check_root().unwrap();
        c.root = PathBuf::from("/definitely/not/here");
        let e = c.check_root().unwrap_err().to_string();
        assert!(e.contains("root") && e.contains("pass ROOT"), "{e}");
        c.root = PathBuf::from("/etc/hostname");
        if c.root.is_file() {
            assert!(c
                .check_root()
                .unwrap_err()
                .to_string()
                .contains("not a directory"));
        }
    }
}
