//! What related history reads: the links between tables (foreign keys of every stored schema
//! version, and the links users added) and the changes of a set of tables in commit order, a
//! transaction at a time. The folding is `history::related`'s.

use std::collections::BTreeSet;

use crate::model::{ChangeId, Link, LoggedChange, RelationSchema, TableName};

use super::db::Query;
use super::reader::Cache;
use super::{SqliteContext, StoreError};

/// Changes read per query while visiting a set of tables.
const PAGE: usize = 5_000;

impl Cache {
    /// Every foreign key any stored schema version declares, and every link a user added; each
    /// once, in a stable order.
    pub fn links(&self) -> Result<Vec<Link>, StoreError> {
        let mut links = BTreeSet::new();
        let definitions: Vec<String> = self
            .connection()
            .query_map("SELECT definition FROM relations", &[], |row| row.get(0))
            .context(self.path(), "reading foreign keys")?;
        for definition in definitions {
            let schema: RelationSchema =
                serde_json::from_str(&definition).map_err(|error| StoreError::Damaged {
                    path: self.path().to_owned(),
                    what: format!("a schema version: {error}"),
                })?;
            for key in &schema.foreign_keys {
                links.insert(Link::from_foreign_key(&schema.table, key));
            }
        }
        links.extend(self.user_links()?);
        Ok(links.into_iter().collect())
    }

    /// Every column any schema version of the tables of this name had, each once.
    pub fn columns_ever(&self, table: &TableName) -> Result<Vec<String>, StoreError> {
        let (ids, _) = self.find_table(table)?;
        let list: Vec<String> = ids.iter().map(ToString::to_string).collect();
        let definitions: Vec<String> = self
            .connection()
            .query_map(
                &format!(
                    "SELECT definition FROM relations WHERE table_id IN ({}) ORDER BY id",
                    list.join(",")
                ),
                &[],
                |row| row.get(0),
            )
            .context(self.path(), "reading a table's columns")?;
        let mut columns: Vec<String> = Vec::new();
        for definition in definitions {
            let schema: RelationSchema =
                serde_json::from_str(&definition).map_err(|error| StoreError::Damaged {
                    path: self.path().to_owned(),
                    what: format!("a schema version: {error}"),
                })?;
            for column in schema.columns {
                if !columns.contains(&column.name) {
                    columns.push(column.name);
                }
            }
        }
        Ok(columns)
    }

    /// The key columns of every schema version of these tables, each set once.
    pub fn key_columns_of(&self, table_ids: &[i64]) -> Result<Vec<Vec<String>>, StoreError> {
        let mut keys: Vec<Vec<String>> = Vec::new();
        for (_, table_id, schema) in self.all_relations()? {
            let key: Vec<String> = schema.key_column_names().map(str::to_owned).collect();
            if table_ids.contains(&table_id) && !keys.contains(&key) {
                keys.push(key);
            }
        }
        Ok(keys)
    }

    /// How many schema versions the tables of this name have had.
    pub fn schema_version_count(&self, table: &TableName) -> Result<usize, StoreError> {
        let (ids, _) = self.find_table(table)?;
        let list: Vec<String> = ids.iter().map(ToString::to_string).collect();
        let count: i64 = self
            .connection()
            .query_row(
                &format!(
                    "SELECT count(*) FROM relations WHERE table_id IN ({})",
                    list.join(",")
                ),
                &[],
                |row| row.get(0),
            )
            .context(self.path(), "reading schema versions")?;
        Ok(usize::try_from(count).unwrap_or(usize::MAX))
    }

    /// The links users added (`rowtrail link`), oldest first.
    pub fn user_links(&self) -> Result<Vec<Link>, StoreError> {
        let definitions: Vec<String> = self
            .connection()
            .query_map("SELECT definition FROM links ORDER BY id", &[], |row| {
                row.get(0)
            })
            .context(self.path(), "reading links")?;
        definitions
            .iter()
            .map(|definition| {
                serde_json::from_str(definition).map_err(|error| StoreError::Damaged {
                    path: self.path().to_owned(),
                    what: format!("a link: {error}"),
                })
            })
            .collect()
    }

    /// Saves a link; false when it was there already.
    pub fn add_link(&self, link: &Link) -> Result<bool, StoreError> {
        let definition = link_json(link);
        let added = self
            .connection()
            .execute(
                "INSERT INTO links (definition, created_at) VALUES (?1, ?2)
                 ON CONFLICT (definition) DO NOTHING",
                &[&definition, &chrono::Utc::now().to_rfc3339()],
            )
            .context(self.path(), "saving a link")?;
        Ok(added > 0)
    }

    /// Removes a link a user added; false when there was none.
    pub fn remove_link(&self, link: &Link) -> Result<bool, StoreError> {
        let removed = self
            .connection()
            .execute(
                "DELETE FROM links WHERE definition = ?1",
                &[&link_json(link)],
            )
            .context(self.path(), "removing a link")?;
        Ok(removed > 0)
    }

    /// Hands `visit` the changes of these tables (every table of each name) in commit order,
    /// one transaction at a time, up to and including change `until`. Stops early when `visit`
    /// returns false.
    pub fn visit_transactions_of(
        &self,
        tables: &[TableName],
        until: Option<ChangeId>,
        mut visit: impl FnMut(Vec<LoggedChange>) -> bool,
    ) -> Result<(), StoreError> {
        let mut ids = Vec::new();
        for table in tables {
            match self.find_table(table) {
                Ok((found, _)) => ids.extend(found),
                // A linked table with no history of its own has nothing to add.
                Err(StoreError::UnknownTable { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        if ids.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = ids.iter().map(ToString::to_string).collect();
        let condition = format!(
            "c.table_id IN ({}) AND c.id > ?1 AND c.id <= ?2",
            list.join(",")
        );
        let until = until.map_or(i64::MAX, |id| id.0);
        let mut after = 0_i64;
        let mut transaction: Vec<LoggedChange> = Vec::new();
        loop {
            let page = self.changes_where(
                &condition,
                &[&after, &until],
                &format!("ORDER BY c.id LIMIT {PAGE}"),
            )?;
            let Some(last) = page.last() else { break };
            after = last.id.0;
            let full = page.len() == PAGE;
            for change in page {
                if transaction
                    .first()
                    .is_some_and(|first| first.tx.id != change.tx.id)
                    && !visit(std::mem::take(&mut transaction))
                {
                    return Ok(());
                }
                transaction.push(change);
            }
            if !full {
                break;
            }
        }
        if !transaction.is_empty() {
            visit(transaction);
        }
        Ok(())
    }
}

pub(super) fn link_json(link: &Link) -> String {
    // A struct of strings always serializes.
    serde_json::to_string(link).unwrap_or_default()
}
