//! Checks that need the machine rather than the file, made at start-up so
//! that a config file can be read and checked anywhere.

use super::{Config, ConfigError, Res};

impl Config {
    /// The root must be a directory we can list.
    pub fn check_root(&self) -> Res<()> {
        let root = self.root.display();
        let fix = "create it or pass ROOT on the command line";
        let meta = std::fs::metadata(&self.root).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                ConfigError::new(format!("root \"{root}\" does not exist; {fix}"))
            } else {
                ConfigError::new(format!("root \"{root}\" cannot be read ({e}); {fix}"))
            }
        })?;
        if !meta.is_dir() {
            return Err(ConfigError::new(format!(
                "root \"{root}\" is not a directory; {fix}"
            )));
        }
        std::fs::read_dir(&self.root).map_err(|e| {
            ConfigError::new(format!("root \"{root}\" cannot be read ({e}); {fix}"))
        })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

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
