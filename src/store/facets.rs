//! Facets: what the changes matching a filter have in common, with counts — their tables,
//! operations, context values and changed columns — so the app can offer them as one-click
//! filters, the way log explorers do.
//!
//! Each dimension is counted as if its own selection were not there (the table counts ignore the
//! chosen table, the operation counts the chosen operation), so a facet always shows the other
//! choices it offers.

use std::collections::HashMap;

use serde_json::Value as Json;

use crate::model::Op;

use super::db::{DbRow, Query};
use super::reader::{Cache, LogFilter};
use super::{SqliteContext, StoreError, op_from_code};

/// Values shown per context field.
const TOP_VALUES: usize = 5;
/// Context fields shown.
const TOP_FIELDS: usize = 8;
/// Changed columns shown.
const TOP_COLUMNS: usize = 10;

/// What the changes matching a filter have in common.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facets {
    /// How many changes were counted (the newest first).
    pub counted: u64,
    /// Every matching change was counted, not only the newest `counted`.
    pub complete: bool,
    /// Changes per table id, ignoring the table filter.
    pub tables: HashMap<i64, u64>,
    /// Changes per operation, ignoring the operation filter; most first.
    pub ops: Vec<(Op, u64)>,
    /// The most common values of each context field, most common fields first.
    pub context: Vec<(String, Vec<(String, u64)>)>,
    /// The columns updates changed most often.
    pub changed: Vec<(String, u64)>,
}

fn top<K: Clone + Ord>(counts: HashMap<K, u64>, count: usize) -> Vec<(K, u64)> {
    let mut sorted: Vec<(K, u64)> = counts.into_iter().collect();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    sorted.truncate(count);
    sorted
}

/// A context's top-level fields as text.
fn context_fields(body: &str) -> Vec<(String, String)> {
    match serde_json::from_str::<Json>(body) {
        Ok(Json::Object(map)) => map
            .into_iter()
            .map(|(field, value)| {
                let text = match value {
                    Json::String(text) => text,
                    other => other.to_string(),
                };
                (field, text)
            })
            .collect(),
        _ => Vec::new(),
    }
}

impl Cache {
    /// Counts the facets of the newest `limit` changes matching `filter` (all of them if there
    /// are fewer); asks `keep_going` now and then and stops early when it says no.
    pub fn facets(
        &self,
        filter: &LogFilter,
        limit: u64,
        keep_going: impl Fn() -> bool,
    ) -> Result<Facets, StoreError> {
        let table_ids = match &filter.table {
            Some(table) => {
                let (ids, _) = self.find_table(table)?;
                Some(match filter.table_id {
                    Some(id) if ids.contains(&id) => vec![id],
                    _ => ids,
                })
            }
            None => None,
        };
        let wider = LogFilter {
            table: None,
            table_id: None,
            key: None,
            op: None,
            ..filter.clone()
        };
        let sql = self.filter_sql(&wider)?;
        let query = format!(
            "SELECT c.table_id, c.op, c.relation_id, CASE WHEN c.op = 'U' THEN c.before END,
                    c.context_id, ctx.body
             FROM changes c {} LEFT JOIN contexts ctx ON ctx.id = c.context_id
             WHERE {} ORDER BY c.id DESC LIMIT {}",
            match sql.needs_transactions {
                true => "JOIN transactions t ON t.id = c.tx_id",
                false => "",
            },
            sql.condition,
            limit.saturating_add(1)
        );
        let params = sql.params();
        let mut facets = Facets {
            complete: true,
            ..Facets::default()
        };
        let mut ops: HashMap<Op, u64> = HashMap::new();
        let mut values: HashMap<String, HashMap<String, u64>> = HashMap::new();
        let mut fields: HashMap<String, u64> = HashMap::new();
        let mut changed: HashMap<String, u64> = HashMap::new();
        let mut contexts: HashMap<i64, Vec<(String, String)>> = HashMap::new();
        let mut failure: Option<StoreError> = None;
        let mut count_row = |row: &DbRow<'_>| -> Result<(), StoreError> {
            let table_id: i64 = row.get(0).context(self.path(), "counting facets")?;
            let code: String = row.get(1).context(self.path(), "counting facets")?;
            let op =
                op_from_code(&code).ok_or_else(|| self.damaged(format!("unknown op {code}")))?;
            let table_fits = table_ids.as_ref().is_none_or(|ids| ids.contains(&table_id));
            let op_fits = filter.op.is_none_or(|wanted| wanted == op);
            if op_fits {
                *facets.tables.entry(table_id).or_default() += 1;
            }
            if table_fits {
                *ops.entry(op).or_default() += 1;
            }
            if !(table_fits && op_fits) {
                return Ok(());
            }
            let before: Option<String> = row.get(3).context(self.path(), "counting facets")?;
            if let Some(before) = before
                && let Ok(Json::Object(delta)) = serde_json::from_str::<Json>(&before)
            {
                let relation_id: i64 = row.get(2).context(self.path(), "counting facets")?;
                let schema = self.schema_version(relation_id)?;
                for index in delta.keys() {
                    if let Some(column) = index
                        .parse::<usize>()
                        .ok()
                        .and_then(|index| schema.columns.get(index))
                    {
                        *changed.entry(column.name.clone()).or_default() += 1;
                    }
                }
            }
            let context_id: Option<i64> = row.get(4).context(self.path(), "counting facets")?;
            if let Some(context_id) = context_id {
                let body: Option<String> = row.get(5).context(self.path(), "counting facets")?;
                let pairs = contexts
                    .entry(context_id)
                    .or_insert_with(|| body.as_deref().map(context_fields).unwrap_or_default());
                for (field, value) in pairs.iter() {
                    *fields.entry(field.clone()).or_default() += 1;
                    *values
                        .entry(field.clone())
                        .or_default()
                        .entry(value.clone())
                        .or_default() += 1;
                }
            }
            Ok(())
        };
        let mut counted = 0u64;
        let mut complete = true;
        self.connection()
            .for_each(&query, &params, |row| {
                if counted == limit {
                    complete = false;
                    return Ok(false);
                }
                counted += 1;
                if counted.is_multiple_of(4096) && !keep_going() {
                    complete = false;
                    return Ok(false);
                }
                match count_row(row) {
                    Ok(()) => Ok(true),
                    Err(error) => {
                        failure = Some(error);
                        Ok(false)
                    }
                }
            })
            .context(self.path(), "counting facets")?;
        if let Some(error) = failure {
            return Err(error);
        }
        facets.counted = counted;
        facets.complete = complete;
        facets.ops = top(ops, usize::MAX);
        facets.changed = top(changed, TOP_COLUMNS);
        facets.context = top(fields, TOP_FIELDS)
            .into_iter()
            .map(|(field, _)| {
                let counts = values.remove(&field).unwrap_or_default();
                (field, top(counts, TOP_VALUES))
            })
            .collect();
        Ok(facets)
    }
}
