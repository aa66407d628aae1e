//! Saved views: named sets of rows and the filters their timelines show them through.

use crate::model::{LinkSource, SavedView};

use super::db::Query;
use super::reader::Cache;
use super::{SqliteContext, StoreError};

impl Cache {
    /// The saved views, by name.
    pub fn views(&self) -> Result<Vec<SavedView>, StoreError> {
        let definitions: Vec<String> = self
            .connection()
            .query_map("SELECT definition FROM views ORDER BY name", &[], |row| {
                row.get(0)
            })
            .context(self.path(), "reading saved views")?;
        definitions
            .iter()
            .map(|definition| {
                serde_json::from_str(definition).map_err(|error| StoreError::Damaged {
                    path: self.path().to_owned(),
                    what: format!("a saved view: {error}"),
                })
            })
            .collect()
    }

    /// Saves a view under its name, replacing one saved before under that name.
    pub fn save_view(&self, view: &SavedView) -> Result<(), StoreError> {
        // A struct of strings always serializes.
        let definition = serde_json::to_string(view).unwrap_or_default();
        self.connection()
            .execute(
                "INSERT INTO views (name, definition, saved_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET definition = excluded.definition,
                     saved_at = excluded.saved_at",
                &[&view.name, &definition, &chrono::Utc::now().to_rfc3339()],
            )
            .context(self.path(), "saving a view")?;
        Ok(())
    }

    /// Removes a saved view; false when there was none of that name.
    pub fn remove_view(&self, name: &str) -> Result<bool, StoreError> {
        let removed = self
            .connection()
            .execute("DELETE FROM views WHERE name = ?1", &[&name])
            .context(self.path(), "removing a view")?;
        Ok(removed > 0)
    }

    /// What a view link made from this cache names as its source.
    pub fn link_source(&self) -> Result<LinkSource, StoreError> {
        let source = self.source()?;
        Ok(LinkSource {
            system_identifier: source.system_identifier,
            database: source.database,
        })
    }
}
