//! The index of references: which changes of a pointing table held which values in a link's
//! columns. Related history reads it to find the rows that ever pointed at a record without
//! reading every change of the pointing table.
//!
//! Both images are indexed (an update's before-image holds the columns it changed), so the index
//! answers "which changes held this value" exactly as a `column:value` search means it; related
//! history only needs the after-images (every value a row's link columns ever held is in the
//! after-image of the change that gave it), and then reads every change of each row it finds.
//! Related history builds the index the first time it follows a link and extends it from where
//! it ended on each later read, in batches of its own write transactions (capture, which writes
//! too, waits at most for one batch); a search only reads it.

use crate::model::{ChangeId, Link, Value};

use super::db::{Query, ToDb};
use super::reader::Cache;
use super::{SqliteContext, StoreError};

/// Changes indexed per write transaction while the index is extended.
const BATCH: i64 = 200_000;

impl Cache {
    /// The changes of `link.from` whose after-image held one of `values` in the link's columns,
    /// oldest first. `None` when the index cannot answer (a value that is not text, or a cache
    /// that cannot be written to): the caller then reads the pointing table whole.
    pub fn referencing(
        &self,
        link: &Link,
        values: &[Vec<Value>],
    ) -> Result<Option<Vec<ChangeId>>, StoreError> {
        let texts: Option<Vec<Vec<&str>>> = values
            .iter()
            .map(|row| {
                row.iter()
                    .map(|value| match value {
                        Value::Text(text) => Some(text.as_str()),
                        _ => None,
                    })
                    .collect()
            })
            .collect();
        let Some(texts) = texts else {
            return Ok(None);
        };
        let link_id = match self.extend_references(link) {
            Ok(Some(id)) => id,
            Ok(None) => return Ok(Some(Vec::new())),
            Err(error) => {
                match self.is_shared() {
                    true => tracing::debug!("reading without the index of references: {error}"),
                    false => tracing::warn!("the index of references cannot be extended: {error}"),
                }
                return Ok(None);
            }
        };
        let placeholders: Vec<String> = (0..link.columns.len())
            .map(|index| format!("CAST(?{} AS TEXT)", index + 2))
            .collect();
        let sql = format!(
            "SELECT change_id FROM refs WHERE link_id = ?1 AND value = {}",
            self.connection().dialect().json_array(&placeholders)
        );
        let mut found = Vec::new();
        for row in &texts {
            let mut bound: Vec<&dyn ToDb> = vec![&link_id];
            bound.extend(row.iter().map(|text| text as &dyn ToDb));
            let ids = self
                .connection()
                .query_map(&sql, &bound, |row| row.get::<i64>(0))
                .context(self.path(), "reading the index of references")?;
            found.extend(ids.into_iter().map(ChangeId));
        }
        found.sort();
        found.dedup();
        Ok(Some(found))
    }

    /// For a `column:value` search (of `table`, when given): the links whose index answers it,
    /// and the newest change all of them cover, when every table with that column has a link on
    /// that column alone (a foreign key like `orders.customer_id`) and related history has built
    /// its index. `None` otherwise: the search then reads the images themselves.
    pub(super) fn search_by_reference(
        &self,
        table: Option<&crate::model::TableName>,
        column: &str,
    ) -> Result<Option<(Vec<i64>, i64)>, StoreError> {
        let links: Vec<Link> = self
            .links()?
            .into_iter()
            .filter(|link| link.columns.len() == 1 && link.columns[0] == column)
            .filter(|link| table.is_none_or(|table| link.from == *table))
            .collect();
        let mut with_column: Vec<crate::model::TableName> = Vec::new();
        for (_, _, schema) in self.all_relations()? {
            if table.is_none_or(|table| schema.table == *table)
                && schema.column_index(column).is_some()
                && !with_column.contains(&schema.table)
            {
                with_column.push(schema.table.clone());
            }
        }
        if with_column.is_empty()
            || !with_column
                .iter()
                .all(|table| links.iter().any(|link| link.from == *table))
        {
            return Ok(None);
        }
        // The index as it stands: a search never writes (the changes above where it reaches are
        // read from their images); related history builds and extends it.
        let mut ids = Vec::new();
        let mut covered = i64::MAX;
        for link in links.iter().filter(|link| with_column.contains(&link.from)) {
            let known: Option<(i64, i64)> = self
                .connection()
                .query_opt(
                    "SELECT id, indexed_to FROM ref_links WHERE definition = ?1",
                    &[&super::related::link_json(link)],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .context(self.path(), "reading the index of references")?;
            let Some((id, reach)) = known else {
                return Ok(None);
            };
            ids.push(id);
            covered = covered.min(reach);
        }
        Ok((!ids.is_empty()).then_some((ids, covered)))
    }

    /// Brings the index of `link` up to the newest change; its id, or `None` when the pointing
    /// table has no history.
    fn extend_references(&self, link: &Link) -> Result<Option<i64>, StoreError> {
        // The newest change first: a table or schema version stored after it has no changes at or
        // below it, so every change indexed below belongs to a version read next.
        let newest: i64 = self
            .connection()
            .query_opt("SELECT coalesce(max(id), 0) FROM changes", &[], |row| {
                row.get(0)
            })
            .context(self.path(), "reading the newest change")?
            .unwrap_or(0);
        let table_ids = match self.find_table(&link.from) {
            Ok((ids, _)) => ids,
            Err(StoreError::UnknownTable { .. }) => return Ok(None),
            Err(error) => return Err(error),
        };
        // Each schema version of the pointing table: where the link's columns are in its rows.
        let mut versions: Vec<(i64, Vec<usize>)> = Vec::new();
        for (relation_id, table_id, schema) in self.all_relations()? {
            if !table_ids.contains(&table_id) {
                continue;
            }
            let positions: Option<Vec<usize>> = link
                .columns
                .iter()
                .map(|column| schema.column_index(column))
                .collect();
            if let Some(positions) = positions {
                versions.push((relation_id, positions));
            }
        }
        let definition = super::related::link_json(link);
        let connection = self.connection();
        if connection.dialect() == super::db::Dialect::Postgres {
            // A role that may only read a shared store reads without the index; asking first
            // keeps a refused write from ending the read transaction around this one.
            let may_write: bool = connection
                .query_row(
                    "SELECT has_table_privilege('refs', 'INSERT')
                        AND has_table_privilege('ref_links', 'INSERT')
                        AND has_table_privilege('ref_links', 'UPDATE')",
                    &[],
                    |row| row.get(0),
                )
                .context(self.path(), "reading the index of references")?;
            if !may_write {
                return Err(StoreError::Remote {
                    location: self.path().display().to_string(),
                    action: "extending the index of references",
                    reason: "this role may not write it".to_owned(),
                });
            }
        }
        let known = |connection: &super::db::Db| {
            connection
                .query_opt(
                    "SELECT id, indexed_to FROM ref_links WHERE definition = ?1",
                    &[&definition],
                    |row| Ok((row.get::<i64>(0)?, row.get::<i64>(1)?)),
                )
                .context(self.path(), "reading the index of references")
        };
        // Written only when the link is new or the index is behind: most reads write nothing.
        let (link_id, mut indexed_to) = match known(connection)? {
            Some(known) => known,
            None => {
                connection
                    .execute(
                        "INSERT INTO ref_links (definition, indexed_to) VALUES (?1, 0)
                         ON CONFLICT (definition) DO NOTHING",
                        &[&definition],
                    )
                    .context(self.path(), "starting an index of references")?;
                known(connection)?.ok_or_else(|| self.damaged("an index of references".into()))?
            }
        };

        while indexed_to < newest {
            let upper = (indexed_to + BATCH).min(newest);
            let transaction = connection
                .transaction()
                .context(self.path(), "extending the index of references")?;
            for (relation_id, positions) in &versions {
                // An update's before-image holds only the columns it changed, by position.
                // An update's before-image holds only the columns it changed: the others are as
                // in its after-image.
                let dialect = connection.dialect();
                let after = |position: usize| dialect.json_element("c.after", position);
                let before = |position: usize| {
                    format!(
                        "CASE c.op WHEN 'U' THEN coalesce({}, {}) ELSE {} END",
                        dialect.json_member("c.before", position),
                        dialect.json_element("c.after", position),
                        dialect.json_element("c.before", position)
                    )
                };
                let images: [(&dyn Fn(usize) -> String, &str); 2] = [
                    (&after, "c.after IS NOT NULL"),
                    (&before, "c.before IS NOT NULL"),
                ];
                for (value, present) in images {
                    let values: Vec<String> =
                        positions.iter().map(|position| value(*position)).collect();
                    let known: Vec<String> = values
                        .iter()
                        .map(|value| format!("{value} IS NOT NULL"))
                        .collect();
                    connection
                        .execute(
                            &format!(
                                "INSERT INTO refs (link_id, value, change_id)
                                 SELECT CAST(?1 AS BIGINT), {}, c.id FROM changes c
                                 WHERE c.relation_id = ?2 AND c.id > ?3 AND c.id <= ?4
                                   AND {present} AND {}
                                 ON CONFLICT DO NOTHING",
                                dialect.json_array(&values),
                                known.join(" AND ")
                            ),
                            &[&link_id, &relation_id, &indexed_to, &upper],
                        )
                        .context(self.path(), "extending the index of references")?;
                }
            }
            connection
                .execute(
                    "UPDATE ref_links SET indexed_to = ?2 WHERE id = ?1",
                    &[&link_id, &upper],
                )
                .context(self.path(), "extending the index of references")?;
            transaction
                .commit()
                .context(self.path(), "extending the index of references")?;
            indexed_to = upper;
        }
        Ok(Some(link_id))
    }
}
