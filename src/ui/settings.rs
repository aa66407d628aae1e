//! What the app remembers between runs (through eframe's storage): recent caches and the time
//! zone choice. Never anything secret: no passwords, no connection strings.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How many recent caches to remember.
const RECENT: usize = 8;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub recent: Vec<PathBuf>,
    /// Show times in UTC instead of local time.
    pub utc: bool,
}

impl Settings {
    pub const KEY: &'static str = "rowtrail.settings";

    /// Puts `path` first in the recent list.
    pub fn remember(&mut self, path: &Path) {
        let path = match path.to_str() {
            // A shared store's URL as typed, never with a password in it.
            Some(url) if crate::shared::is_store_url(url) => PathBuf::from(without_password(url)),
            _ => std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned()),
        };
        self.recent.retain(|known| *known != path);
        self.recent.insert(0, path);
        self.recent.truncate(RECENT);
    }
}

/// A URL without the password its user part may hold.
fn without_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;

    #[test]
    fn a_shared_stores_url_is_remembered_without_its_password() {
        let mut settings = Settings::default();
        settings.remember(Path::new(
            "postgres://ann:secret@db.example.com:5432/history",
        ));
        settings.remember(Path::new("postgresql://bob@db.example.com/history"));
        assert_eq!(
            settings.recent,
            vec![
                PathBuf::from("postgresql://bob@db.example.com/history"),
                PathBuf::from("postgres://ann@db.example.com:5432/history"),
            ]
        );
    }

    #[test]
    fn recent_caches_are_unique_newest_first_and_bounded() {
        let mut settings = Settings::default();
        for index in 0..10 {
            settings.remember(Path::new(&format!("/nonexistent/{index}.rowtrail")));
        }
        settings.remember(Path::new("/nonexistent/5.rowtrail"));
        assert_eq!(settings.recent.len(), RECENT);
        assert_eq!(settings.recent[0], PathBuf::from("/nonexistent/5.rowtrail"));
        assert_eq!(
            settings
                .recent
                .iter()
                .filter(|path| path.ends_with("5.rowtrail"))
                .count(),
            1
        );
    }
}
