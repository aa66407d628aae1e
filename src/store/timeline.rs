//! What the timeline needs from a cache of any size: the ids that match a filter, streamed newest
//! first (to build a sparse rank index); a page of changes below an id; the changes newer than an
//! id; counts over time; the time span; the context fields in use. None of them loads the history
//! into memory.

use chrono::{DateTime, Utc};

use crate::model::{ChangeId, LoggedChange};

use super::db::{Dialect, Query, ToDb};
use super::reader::{Cache, LogFilter};
use super::{SqliteContext, StoreError};

/// The first and the newest commit time in a cache.
pub type TimeSpan = (DateTime<Utc>, DateTime<Utc>);

impl Cache {
    /// Calls `visit` with every id matching `filter` at or below `top`, newest first, until it
    /// returns false.
    pub fn scan_ids(
        &self,
        filter: &LogFilter,
        top: ChangeId,
        mut visit: impl FnMut(ChangeId) -> bool,
    ) -> Result<(), StoreError> {
        /// Ids per query on a shared store, which sends each result whole.
        const PAGE: i64 = 50_000;
        let sql = self.filter_sql(filter)?;
        let params = sql.params();
        if self.connection().dialect() == Dialect::Sqlite {
            // A cache file streams the ids: one query, stopped when `visit` has enough.
            let query = format!(
                "SELECT c.id {} WHERE {} AND c.id <= {} ORDER BY c.id DESC",
                sql.from(),
                sql.condition,
                top.0
            );
            return self
                .connection()
                .for_each(&query, &params, |row| Ok(visit(ChangeId(row.get(0)?))))
                .context(self.path(), "scanning the timeline");
        }
        let mut below = top.0.saturating_add(1);
        loop {
            let query = format!(
                "SELECT c.id {} WHERE {} AND c.id < {below} ORDER BY c.id DESC LIMIT {PAGE}",
                sql.from(),
                sql.condition,
            );
            let ids: Vec<i64> = self
                .connection()
                .query_map(&query, &params, |row| row.get(0))
                .context(self.path(), "scanning the timeline")?;
            for id in &ids {
                if !visit(ChangeId(*id)) {
                    return Ok(());
                }
            }
            match ids.last() {
                Some(last) if ids.len() as i64 == PAGE => below = *last,
                _ => return Ok(()),
            }
        }
    }

    /// Up to `count` changes matching `filter`, newest first, starting `skip` matches below `top`
    /// (inclusive).
    pub fn page(
        &self,
        filter: &LogFilter,
        top: ChangeId,
        skip: usize,
        count: usize,
    ) -> Result<Vec<LoggedChange>, StoreError> {
        let sql = self.filter_sql(filter)?;
        self.changes_where(
            &format!("{} AND c.id <= {}", sql.condition, top.0),
            &sql.params(),
            &format!("ORDER BY c.id DESC LIMIT {count} OFFSET {skip}"),
        )
    }

    /// The ids matching `filter` above `bottom`, newest first: what arrived since an index was built.
    pub fn ids_above(
        &self,
        filter: &LogFilter,
        bottom: ChangeId,
    ) -> Result<Vec<ChangeId>, StoreError> {
        let sql = self.filter_sql(filter)?;
        let query = format!(
            "SELECT c.id {} WHERE {} AND c.id > {} ORDER BY c.id DESC",
            sql.from(),
            sql.condition,
            bottom.0
        );
        let params = sql.params();
        self.connection()
            .query_map(&query, &params, |row| row.get::<i64>(0).map(ChangeId))
            .context(self.path(), "reading new changes")
    }

    /// The newest change of a transaction (by the cache's id) that matches `filter`, and how
    /// many of its changes match; `None` when none does.
    pub fn transaction_span(
        &self,
        filter: &LogFilter,
        tx_id: i64,
    ) -> Result<Option<(ChangeId, u64)>, StoreError> {
        let sql = self.filter_sql(filter)?;
        let mut params = sql.params();
        params.push(&tx_id);
        let query = format!(
            "SELECT max(c.id), count(*) {} WHERE {} AND c.tx_id = ?{}",
            sql.from(),
            sql.condition,
            params.len(),
        );
        let (newest, count): (Option<i64>, i64) = self
            .connection()
            .query_row(&query, &params, |row| Ok((row.get(0)?, row.get(1)?)))
            .context(self.path(), "reading a transaction's rows")?;
        Ok(newest.map(|newest| (ChangeId(newest), count.max(0) as u64)))
    }

    /// How many changes matching `filter` have ids from `low` up to (not including) `high`.
    pub fn count_between(
        &self,
        filter: &LogFilter,
        low: ChangeId,
        high: ChangeId,
    ) -> Result<u64, StoreError> {
        let sql = self.filter_sql(filter)?;
        let query = format!(
            "SELECT count(*) {} WHERE {} AND c.id >= {} AND c.id < {}",
            sql.from(),
            sql.condition,
            low.0,
            high.0
        );
        let count: i64 = self
            .connection()
            .query_row(&query, &sql.params(), |row| row.get(0))
            .context(self.path(), "counting changes")?;
        Ok(count.max(0) as u64)
    }

    /// When the first and the newest transactions committed.
    pub fn time_span(&self) -> Result<Option<TimeSpan>, StoreError> {
        let span: (Option<i64>, Option<i64>) = self
            .connection()
            .query_row(
                "SELECT min(committed_at), max(committed_at) FROM transactions",
                &[],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .context(self.path(), "reading the time span")?;
        Ok(match span {
            (Some(first), Some(last)) => {
                DateTime::from_timestamp_micros(first).zip(DateTime::from_timestamp_micros(last))
            }
            _ => None,
        })
    }

    /// Changes matching `filter` in each of `buckets` equal slices of [`from`, `to`). When each
    /// slice spans at least a minute and the filter has only table, operation and time terms, the
    /// per-minute rollup answers; otherwise the matching changes are scanned, and `keep_going` is
    /// asked now and then (returning false ends the scan early, with the counts so far).
    pub fn histogram(
        &self,
        filter: &LogFilter,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        buckets: usize,
        keep_going: impl Fn() -> bool,
    ) -> Result<Vec<u64>, StoreError> {
        let mut counts = vec![0u64; buckets.max(1)];
        let (from_micros, to_micros) = (
            from.timestamp_micros(),
            to.timestamp_micros().max(from.timestamp_micros() + 1),
        );
        let width = (to_micros - from_micros) as f64 / counts.len() as f64;
        let mut add = |micros: i64, count: i64| {
            if micros >= from_micros && micros < to_micros {
                let bucket = (((micros - from_micros) as f64) / width) as usize;
                if let Some(slot) = counts.get_mut(bucket) {
                    *slot += count.max(0) as u64;
                }
            }
        };
        let sql = self.filter_sql(filter)?;
        if sql.only_rollup_terms && width >= 60_000_000.0 {
            let mut conditions = vec![format!(
                "minute BETWEEN {} AND {}",
                from_micros / 60_000_000,
                to_micros / 60_000_000
            )];
            if let Some(ids) = &sql.table_ids {
                conditions.push(format!("table_id IN ({})", ids.join(",")));
            }
            let op: Vec<&dyn ToDb> = sql.op.iter().map(|op| op as &dyn ToDb).collect();
            if sql.op.is_some() {
                conditions.push("op = ?1".to_owned());
            }
            let query = format!(
                "SELECT minute, CAST(sum(count) AS BIGINT) FROM change_minutes WHERE {} GROUP BY minute",
                conditions.join(" AND ")
            );
            let minutes: Vec<(i64, i64)> = self
                .connection()
                .query_map(&query, &op, |row| Ok((row.get(0)?, row.get(1)?)))
                .context(self.path(), "counting changes over time")?;
            for (minute, count) in minutes {
                // A minute is counted at its middle, clamped into the range asked for.
                let micros = (minute * 60_000_000 + 30_000_000).clamp(from_micros, to_micros - 1);
                add(micros, count);
            }
            return Ok(counts);
        }
        let query = format!(
            "SELECT t.committed_at FROM changes c JOIN transactions t ON t.id = c.tx_id {} WHERE {}
               AND t.committed_at >= {from_micros} AND t.committed_at < {to_micros}",
            match sql.needs_contexts {
                true => "LEFT JOIN contexts ctx ON ctx.id = c.context_id",
                false => "",
            },
            sql.condition
        );
        let params = sql.params();
        if self.connection().dialect() == Dialect::Postgres {
            // A shared store counts on its server: one row per bucket, not one per change.
            let buckets = counts.len() as i64;
            let span = to_micros - from_micros;
            let grouped = format!(
                "SELECT CAST((committed_at - {from_micros}) * {buckets} / {span} AS BIGINT), count(*)
                 FROM ({}) AS matching GROUP BY 1",
                query.replacen("SELECT t.committed_at", "SELECT t.committed_at AS committed_at", 1)
            );
            let rows: Vec<(i64, i64)> = self
                .connection()
                .query_map(&grouped, &params, |row| Ok((row.get(0)?, row.get(1)?)))
                .context(self.path(), "counting changes over time")?;
            for (bucket, count) in rows {
                if let Some(slot) = usize::try_from(bucket).ok().and_then(|b| counts.get_mut(b)) {
                    *slot += count.max(0) as u64;
                }
            }
            return Ok(counts);
        }
        let mut seen = 0u64;
        self.connection()
            .for_each(&query, &params, |row| {
                add(row.get(0)?, 1);
                seen += 1;
                Ok(!seen.is_multiple_of(4096) || keep_going())
            })
            .context(self.path(), "counting changes over time")?;
        Ok(counts)
    }

    /// The top-level fields of the 2,000 newest context messages, most common first (at most 50):
    /// what the context filter offers, without reading every context ever stored.
    pub fn context_fields(&self) -> Result<Vec<String>, StoreError> {
        let fields = match self.connection().dialect() {
            Dialect::Sqlite => "json_each(recent.body) AS field",
            Dialect::Postgres => "jsonb_each(CAST(recent.body AS JSONB)) AS field",
        };
        self.connection()
            .query_map(
                &format!(
                    "SELECT field.key
                     FROM (SELECT body FROM contexts ORDER BY id DESC LIMIT 2000) AS recent,
                          {fields}
                     GROUP BY field.key ORDER BY count(*) DESC, field.key LIMIT 50"
                ),
                &[],
                |row| row.get(0),
            )
            .context(self.path(), "reading context fields")
    }

    /// The changes of one transaction (by the cache's transaction id), in commit order: all of
    /// them, or the first `limit`.
    pub fn transaction(
        &self,
        tx_id: i64,
        limit: Option<usize>,
    ) -> Result<Vec<LoggedChange>, StoreError> {
        let order = match limit {
            Some(limit) => format!("ORDER BY c.id LIMIT {limit}"),
            None => "ORDER BY c.id".to_owned(),
        };
        self.changes_where("c.tx_id = ?1", &[&tx_id], &order)
    }
}
