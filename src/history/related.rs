//! Related history: the changes of one record and of the rows that point at it through foreign
//! keys (and at those, to a depth), judged at the moment of each change.
//!
//! A change belongs to the story when, in its before or after image, its row points at a member,
//! and that member belonged at that moment (its state then, or its last state if it was gone).
//! The root record always belongs. So an order moved to another customer keeps its earlier
//! changes in the first customer's story, its move, and nothing after; an order moved *to* the
//! customer joins with the change that moved it; a deleted row (a cascade included) stays.
//!
//! `Story` is fed every change of the tables it names, in commit order, a transaction at a time,
//! and keeps the last known row of every record of those tables: pure, no I/O.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use crate::model::{Link, LoggedChange, Op, RelationSchema, Row, TableName, Value, key_of};

/// The most foreign keys a story follows from its root.
pub const MAX_DEPTH: usize = 10;

/// One record on the way from the root to a changed row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub table: TableName,
    /// The record's key columns and values (empty for a table without a key).
    pub key: Vec<(String, Value)>,
}

impl Step {
    fn of(schema: &RelationSchema, row: &Row) -> Self {
        Self {
            table: schema.table.clone(),
            key: schema
                .key_column_names()
                .map(str::to_owned)
                .zip(key_of(schema, row))
                .collect(),
        }
    }
}

impl fmt::Display for Step {
    /// `orders 7`, `order_items (7,2)`, `notes` (no key).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let values: Vec<String> = self
            .key
            .iter()
            .map(|(_, value)| value.display().into_owned())
            .collect();
        match values.as_slice() {
            [] => write!(f, "{}", self.table.short()),
            [one] => write!(f, "{} {one}", self.table.short()),
            many => write!(f, "{} ({})", self.table.short(), many.join(",")),
        }
    }
}

/// `customers 42 › orders 7 › order_items (7,2)`.
pub fn path_text(path: &[Step]) -> String {
    path.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" › ")
}

/// A change of the story, with the way from the root record to the row it changed.
#[derive(Debug, Clone)]
pub struct Related {
    pub change: LoggedChange,
    pub path: Vec<Step>,
}

/// Why a story cannot be told.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoryError {
    #[error("--depth {0} is out of range: follow 1 to {MAX_DEPTH} foreign keys")]
    Depth(usize),
    #[error(
        "no table points at {0} by a foreign key (or a link): there is no related history to follow; add a link with rowtrail link, or use --up for the rows it points at"
    )]
    NoLinks(String),
}

/// The last known row of a record.
#[derive(Debug, Clone)]
struct Known {
    schema: Arc<RelationSchema>,
    row: Row,
    /// Deleted (or its table emptied): gone now, but still what its rows pointed at.
    gone: bool,
}

impl Known {
    fn value(&self, column: &str) -> Option<&Value> {
        self.schema
            .column_index(column)
            .and_then(|index| self.row.get(index))
    }

    /// `row` (of `schema`) with the values the stream did not send taken from this one.
    fn fill(&self, schema: &RelationSchema, row: &Row) -> Row {
        row.iter()
            .zip(&schema.columns)
            .map(|(value, column)| match value.is_available() {
                true => value.clone(),
                false => self
                    .value(&column.name)
                    .cloned()
                    .unwrap_or(Value::Unavailable),
            })
            .collect()
    }
}

/// The story of one record, told change by change.
#[derive(Debug)]
pub struct Story {
    root: TableName,
    /// The root record's key, as it is now (a key update moves it).
    root_key: Vec<Value>,
    root_row: Option<Known>,
    links: Vec<Link>,
    depth: usize,
    /// Tables whose rows the root points at (`--up`), one level.
    up: Vec<Link>,
    /// Fewest links from each followed table to the root.
    levels: HashMap<TableName, usize>,
    /// Every record of the followed tables, by table and record key.
    rows: HashMap<TableName, HashMap<Vec<Value>, Known>>,
}

impl Story {
    /// A story of the record `root_key` of `root`, following `links` to `depth` (1 to
    /// `MAX_DEPTH`), and with `up` the rows the root points at.
    pub fn new(
        root: TableName,
        root_key: Vec<Value>,
        links: Vec<Link>,
        depth: usize,
        up: bool,
    ) -> Result<Self, StoryError> {
        if !(1..=MAX_DEPTH).contains(&depth) {
            return Err(StoryError::Depth(depth));
        }
        let mut levels = HashMap::from([(root.clone(), 0)]);
        let mut frontier = vec![root.clone()];
        for level in 1..=depth {
            let mut next = Vec::new();
            for link in links.iter().filter(|link| frontier.contains(&link.to)) {
                if !levels.contains_key(&link.from) {
                    levels.insert(link.from.clone(), level);
                    next.push(link.from.clone());
                }
            }
            frontier = next;
        }
        let up: Vec<Link> = match up {
            true => links
                .iter()
                .filter(|link| link.from == root)
                .cloned()
                .collect(),
            false => Vec::new(),
        };
        let referenced = links.iter().any(|link| link.to == root);
        if !referenced && up.is_empty() {
            return Err(StoryError::NoLinks(root.to_string()));
        }
        Ok(Self {
            root,
            root_key,
            root_row: None,
            links,
            depth,
            up,
            levels,
            rows: HashMap::new(),
        })
    }

    /// The tables whose changes the story needs, in no particular order.
    pub fn tables(&self) -> Vec<TableName> {
        let mut tables: HashSet<TableName> = self.levels.keys().cloned().collect();
        tables.extend(self.up.iter().map(|link| link.to.clone()));
        let mut tables: Vec<TableName> = tables.into_iter().collect();
        tables.sort();
        tables
    }

    /// The links the story follows.
    pub fn links(&self) -> &[Link] {
        &self.links
    }

    /// How many links the story follows down from the record.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// True when rows of `link.from` can join the story through `link`: it points from a table
    /// below the record at the record's table or another table below it.
    pub fn follows_down(&self, link: &Link) -> bool {
        self.levels.get(&link.from).is_some_and(|level| *level > 0)
            && self.levels.contains_key(&link.to)
    }

    /// The links the record's own rows point along (`--up`).
    pub fn up_links(&self) -> &[Link] {
        &self.up
    }

    /// Takes one transaction's changes of the story's tables, in commit order, and returns those
    /// that belong to the story. Rows of a baseline are all there at once: they are known before
    /// any is judged, whatever order the tables were copied in.
    pub fn feed_transaction(&mut self, changes: Vec<LoggedChange>) -> Vec<Related> {
        for change in &changes {
            if change.change.op == Op::Snapshot {
                if change.table == self.root
                    && change.change.key(&change.schema) == self.root_key
                    && let Some(row) = &change.change.after
                {
                    self.root_row = Some(Known {
                        schema: change.schema.clone(),
                        row: row.clone(),
                        gone: false,
                    });
                }
                self.remember(change);
            }
        }
        changes
            .into_iter()
            .filter_map(|change| self.feed(change))
            .collect()
    }

    /// Takes one change (after every earlier one) and returns it with its path when it belongs.
    fn feed(&mut self, change: LoggedChange) -> Option<Related> {
        if change.change.op.empties_table() {
            for known in self
                .rows
                .get_mut(&change.table)
                .into_iter()
                .flat_map(|rows| rows.values_mut())
            {
                known.gone = true;
            }
            if let Some(root) = self.root_row.as_mut().filter(|_| change.table == self.root) {
                root.gone = true;
            }
            return None;
        }
        if !change.change.op.changes_rows() {
            return None;
        }
        let schema = change.schema.clone();
        if change.table == self.root {
            let key = change.change.key(&schema);
            let old_key = change.change.old_key(&schema);
            if key == self.root_key || old_key.as_ref() == Some(&self.root_key) {
                self.root_key = key;
                if let Some(row) = change.change.identifying_row() {
                    self.root_row = Some(Known {
                        schema: schema.clone(),
                        row: row.clone(),
                        gone: change.change.op == Op::Delete,
                    });
                }
                self.remember(&change);
                let path = vec![root_step(&schema, &self.root_key)];
                return Some(Related { change, path });
            }
        }
        let before = self.before_image(&change);
        let below_root = self
            .levels
            .get(&change.table)
            .is_some_and(|level| *level > 0);
        let mut path = None;
        if below_root {
            let judged = [change.change.after.as_ref(), before.as_ref()];
            path = judged
                .into_iter()
                .flatten()
                .find_map(|row| self.belongs(&schema, row, self.depth));
        }
        if path.is_none() {
            path = [change.change.after.as_ref(), before.as_ref()]
                .into_iter()
                .flatten()
                .find_map(|row| self.pointed_at_by_root(&schema, row));
        }
        self.remember(&change);
        path.map(|path| Related { change, path })
    }

    /// The path to a row of `schema`'s table when it points, through links, at the root within
    /// `hops` links.
    fn belongs(&self, schema: &Arc<RelationSchema>, row: &Row, hops: usize) -> Option<Vec<Step>> {
        if hops == 0 {
            return None;
        }
        for link in self.links.iter().filter(|link| link.from == schema.table) {
            let Some(values) = values_of(schema, row, &link.columns) else {
                continue;
            };
            if link.to == self.root {
                if self.is_root(&link.to_columns, &values) {
                    let step = Step::of(schema, row);
                    // Not seen yet (the link names it by its key): its key from the link.
                    let root = self
                        .root_row
                        .as_ref()
                        .map(|known| Step::of(&known.schema, &known.row))
                        .unwrap_or_else(|| Step {
                            table: self.root.clone(),
                            key: link
                                .to_columns
                                .iter()
                                .cloned()
                                .zip(values.clone())
                                .collect(),
                        });
                    return Some(vec![root, step]);
                }
                continue;
            }
            if !self.levels.contains_key(&link.to) {
                continue;
            }
            for parent in self.parents(&link.to, &link.to_columns, &values) {
                if let Some(mut path) = self.belongs(&parent.schema, &parent.row, hops - 1) {
                    path.push(Step::of(schema, row));
                    return Some(path);
                }
            }
        }
        None
    }

    /// With `--up`: the path to a row the root points at now.
    fn pointed_at_by_root(&self, schema: &Arc<RelationSchema>, row: &Row) -> Option<Vec<Step>> {
        let root = self.root_row.as_ref()?;
        self.up
            .iter()
            .filter(|link| link.to == schema.table)
            .find(|link| {
                let pointed: Option<Vec<&Value>> = link
                    .columns
                    .iter()
                    .map(|column| root.value(column))
                    .collect();
                let target = values_of(schema, row, &link.to_columns);
                match (pointed, target) {
                    (Some(pointed), Some(target)) => {
                        pointed.iter().zip(&target).all(|(a, b)| *a == b)
                    }
                    _ => false,
                }
            })
            .map(|_| vec![Step::of(&root.schema, &root.row), Step::of(schema, row)])
    }

    /// True when `values` in `columns` of the root table name the root record.
    fn is_root(&self, columns: &[String], values: &[Value]) -> bool {
        if let Some(known) = &self.root_row {
            let own: Option<Vec<&Value>> =
                columns.iter().map(|column| known.value(column)).collect();
            if let Some(own) = own {
                return own.iter().zip(values).all(|(a, b)| *a == b);
            }
        }
        // Not seen yet: the link names the root by its key.
        values == self.root_key.as_slice()
    }

    /// The known rows of `table` whose `columns` hold `values`.
    fn parents<'a>(
        &'a self,
        table: &TableName,
        columns: &'a [String],
        values: &'a [Value],
    ) -> impl Iterator<Item = &'a Known> + 'a {
        let rows = self.rows.get(table);
        // The common case, a link to the key: one lookup.
        let direct = rows.and_then(|rows| {
            let any = rows.values().next()?;
            let key_names: Vec<&str> = any.schema.key_column_names().collect();
            (key_names == columns.iter().map(String::as_str).collect::<Vec<_>>())
                .then(|| rows.get(values))
                .flatten()
        });
        let scanned = rows
            .filter(move |_| direct.is_none())
            .into_iter()
            .flat_map(|rows| rows.values())
            .filter(move |known| {
                columns
                    .iter()
                    .zip(values)
                    .all(|(column, value)| known.value(column) == Some(value))
            });
        direct.into_iter().chain(scanned)
    }

    /// The change's before image, with values the stream did not send taken from the row as last
    /// known (an update under `REPLICA IDENTITY DEFAULT` sends only the key).
    fn before_image(&self, change: &LoggedChange) -> Option<Row> {
        let schema = &change.schema;
        let key = change
            .change
            .old_key(schema)
            .unwrap_or_else(|| change.change.key(schema));
        let known = self.rows.get(&change.table).and_then(|rows| rows.get(&key));
        match (&change.change.before, known) {
            (Some(before), Some(known)) => Some(known.fill(schema, before)),
            (Some(before), None) => Some(before.clone()),
            (None, Some(known)) if change.change.op != Op::Insert => Some(
                schema
                    .columns
                    .iter()
                    .map(|column| {
                        known
                            .value(&column.name)
                            .cloned()
                            .unwrap_or(Value::Unavailable)
                    })
                    .collect(),
            ),
            (None, _) => None,
        }
    }

    /// Keeps the row as it is after the change; a deleted row keeps its last state.
    fn remember(&mut self, change: &LoggedChange) {
        let schema = &change.schema;
        let Some(after) = &change.change.after else {
            if let Some(before) = &change.change.before {
                let key = match schema.has_key() {
                    true => key_of(schema, before),
                    false => before.clone(),
                };
                let rows = self.rows.entry(change.table.clone()).or_default();
                match rows.get_mut(&key) {
                    Some(known) => known.gone = true,
                    None => {
                        rows.insert(
                            key,
                            Known {
                                schema: schema.clone(),
                                row: before.clone(),
                                gone: true,
                            },
                        );
                    }
                }
            }
            return;
        };
        let rows = self.rows.entry(change.table.clone()).or_default();
        if let Some(old) = change.change.old_key(schema) {
            rows.remove(&old);
        }
        let key = record_key(schema, after);
        // Values the stream did not send stay as last known.
        let row = match rows.get(&key) {
            Some(known) if !known.gone => known.fill(schema, after),
            _ => after.clone(),
        };
        rows.insert(
            key,
            Known {
                schema: schema.clone(),
                row,
                gone: false,
            },
        );
    }

    /// The record and every related row as they are now (after the changes fed so far), each
    /// with its path; rows that are gone are left out. Nearest first, then by path.
    pub fn members(&self) -> Vec<Member> {
        let mut members = Vec::new();
        if let Some(root) = self.root_row.as_ref().filter(|root| !root.gone) {
            members.push(Member {
                path: vec![Step::of(&root.schema, &root.row)],
                schema: root.schema.clone(),
                row: root.row.clone(),
            });
        }
        for (table, rows) in &self.rows {
            let below_root = self.levels.get(table).is_some_and(|level| *level > 0);
            let above_root = self.up.iter().any(|link| link.to == *table);
            for known in rows.values().filter(|known| !known.gone) {
                let path = match below_root {
                    true => self.belongs(&known.schema, &known.row, self.depth),
                    false => None,
                }
                .or_else(|| match above_root {
                    true => self.pointed_at_by_root(&known.schema, &known.row),
                    false => None,
                });
                if let Some(path) = path {
                    members.push(Member {
                        path,
                        schema: known.schema.clone(),
                        row: known.row.clone(),
                    });
                }
            }
        }
        members.sort_by_cached_key(|member| (member.path.len(), path_text(&member.path)));
        members
    }
}

/// A row of the story as it is at a moment.
#[derive(Debug, Clone)]
pub struct Member {
    pub path: Vec<Step>,
    pub schema: Arc<RelationSchema>,
    pub row: Row,
}

/// The root record's step when only its key is known: its table and key.
pub fn root_step(schema: &RelationSchema, key: &[Value]) -> Step {
    Step {
        table: schema.table.clone(),
        key: schema
            .key_column_names()
            .map(str::to_owned)
            .zip(key.iter().cloned())
            .collect(),
    }
}

/// A record's identity within its table: its key, or all its values when the table has none.
fn record_key(schema: &RelationSchema, row: &Row) -> Vec<Value> {
    match schema.has_key() {
        true => key_of(schema, row),
        false => row.clone(),
    }
}

/// The row's values in `columns`; `None` when a column is missing, NULL or not known (a NULL
/// foreign key points at nothing).
pub fn values_of(schema: &RelationSchema, row: &Row, columns: &[String]) -> Option<Vec<Value>> {
    columns
        .iter()
        .map(|column| {
            let value = row.get(schema.column_index(column)?)?;
            matches!(value, Value::Text(_) | Value::Bytes(_)).then(|| value.clone())
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;
    use crate::model::{Change, Column, ForeignKey, ReplicaIdentity};

    fn schema(
        table: &str,
        columns: &[&str],
        key: Vec<usize>,
        keys: Vec<ForeignKey>,
    ) -> Arc<RelationSchema> {
        Arc::new(RelationSchema {
            oid: 1,
            table: TableName::new("public", table),
            replica_identity: ReplicaIdentity::Full,
            columns: columns
                .iter()
                .map(|name| Column::text_for_tests(name))
                .collect(),
            key,
            foreign_keys: keys,
            key_read_later: false,
        })
    }

    fn fk(columns: &[&str], table: &str, to: &[&str]) -> ForeignKey {
        ForeignKey {
            name: format!("{table}_fk"),
            columns: columns.iter().map(|c| (*c).to_owned()).collect(),
            referenced_table: TableName::new("public", table),
            referenced_columns: to.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    struct Shop {
        customers: Arc<RelationSchema>,
        orders: Arc<RelationSchema>,
        items: Arc<RelationSchema>,
        next: i64,
    }

    impl Shop {
        fn new() -> Self {
            Self {
                customers: schema("customers", &["id", "name"], vec![0], vec![]),
                orders: schema(
                    "orders",
                    &["id", "customer_id", "status"],
                    vec![0],
                    vec![fk(&["customer_id"], "customers", &["id"])],
                ),
                items: schema(
                    "order_items",
                    &["order_id", "line", "sku"],
                    vec![0, 1],
                    vec![fk(&["order_id"], "orders", &["id"])],
                ),
                next: 0,
            }
        }

        fn links(&self) -> Vec<Link> {
            [&self.orders, &self.items]
                .iter()
                .flat_map(|schema| {
                    schema
                        .foreign_keys
                        .iter()
                        .map(|key| Link::from_foreign_key(&schema.table, key))
                })
                .collect()
        }

        fn change(
            &mut self,
            schema: &Arc<RelationSchema>,
            op: Op,
            before: Option<&[&str]>,
            after: Option<&[&str]>,
        ) -> LoggedChange {
            self.next += 1;
            let row = |values: &[&str]| values.iter().map(|v| Value::text(*v)).collect::<Row>();
            LoggedChange::for_tests(
                self.next,
                schema,
                Change {
                    op,
                    before: before.map(row),
                    after: after.map(row),
                },
            )
        }
    }

    fn told(story: &mut Story, changes: Vec<LoggedChange>) -> Vec<(i64, String)> {
        changes
            .into_iter()
            .flat_map(|change| story.feed_transaction(vec![change]))
            .map(|related| (related.change.id.0, path_text(&related.path)))
            .collect()
    }

    #[test]
    fn an_order_moved_away_keeps_its_earlier_changes_and_leaves_with_the_move() {
        let mut shop = Shop::new();
        let (c, o, i) = (
            shop.customers.clone(),
            shop.orders.clone(),
            shop.items.clone(),
        );
        let changes = vec![
            shop.change(&c, Op::Insert, None, Some(&["42", "Acme"])),
            shop.change(&c, Op::Insert, None, Some(&["43", "Other"])),
            shop.change(&o, Op::Insert, None, Some(&["7", "42", "new"])),
            shop.change(&i, Op::Insert, None, Some(&["7", "1", "A"])),
            shop.change(
                &o,
                Op::Update,
                Some(&["7", "42", "new"]),
                Some(&["7", "43", "new"]),
            ),
            shop.change(
                &i,
                Op::Update,
                Some(&["7", "1", "A"]),
                Some(&["7", "1", "B"]),
            ),
            shop.change(&o, Op::Insert, None, Some(&["8", "43", "new"])),
            shop.change(
                &o,
                Op::Update,
                Some(&["8", "43", "new"]),
                Some(&["8", "42", "new"]),
            ),
            shop.change(&i, Op::Insert, None, Some(&["8", "1", "C"])),
        ];
        let links = shop.links();
        let mut story =
            Story::new(c.table.clone(), vec![Value::text("42")], links, 3, false).unwrap();
        assert_eq!(
            told(&mut story, changes),
            vec![
                (1, "customers 42".to_owned()),
                (3, "customers 42 › orders 7".to_owned()),
                (4, "customers 42 › orders 7 › order_items (7,1)".to_owned()),
                (5, "customers 42 › orders 7".to_owned()),
                (8, "customers 42 › orders 8".to_owned()),
                (9, "customers 42 › orders 8 › order_items (8,1)".to_owned()),
            ]
        );
    }

    #[test]
    fn deleted_rows_and_their_cascades_stay_in_the_story() {
        let mut shop = Shop::new();
        let (c, o, i) = (
            shop.customers.clone(),
            shop.orders.clone(),
            shop.items.clone(),
        );
        let changes = vec![
            shop.change(&c, Op::Snapshot, None, Some(&["42", "Acme"])),
            shop.change(&o, Op::Snapshot, None, Some(&["7", "42", "paid"])),
            shop.change(&i, Op::Snapshot, None, Some(&["7", "1", "A"])),
            shop.change(&c, Op::Delete, Some(&["42", "Acme"]), None),
            shop.change(&o, Op::Delete, Some(&["7", "42", "paid"]), None),
            shop.change(&i, Op::Delete, Some(&["7", "1", "A"]), None),
        ];
        let mut story = Story::new(
            c.table.clone(),
            vec![Value::text("42")],
            shop.links(),
            3,
            false,
        )
        .unwrap();
        let ids: Vec<i64> = told(&mut story, changes)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ids, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn a_baseline_is_judged_whole_whatever_order_its_tables_came_in() {
        let mut shop = Shop::new();
        let (c, o, i) = (
            shop.customers.clone(),
            shop.orders.clone(),
            shop.items.clone(),
        );
        let baseline = vec![
            shop.change(&i, Op::Snapshot, None, Some(&["7", "1", "A"])),
            shop.change(&i, Op::Snapshot, None, Some(&["9", "1", "Z"])),
            shop.change(&o, Op::Snapshot, None, Some(&["7", "42", "paid"])),
            shop.change(&o, Op::Snapshot, None, Some(&["9", "43", "paid"])),
            shop.change(&c, Op::Snapshot, None, Some(&["42", "Acme"])),
        ];
        let mut story = Story::new(
            c.table.clone(),
            vec![Value::text("42")],
            shop.links(),
            3,
            false,
        )
        .unwrap();
        let ids: Vec<i64> = story
            .feed_transaction(baseline)
            .into_iter()
            .map(|related| related.change.id.0)
            .collect();
        assert_eq!(ids, vec![1, 3, 5]);
        let paths: Vec<String> = {
            let mut shop = Shop::new();
            let (c, o) = (shop.customers.clone(), shop.orders.clone());
            let baseline = vec![
                shop.change(&o, Op::Snapshot, None, Some(&["7", "42", "paid"])),
                shop.change(&c, Op::Snapshot, None, Some(&["42", "Acme"])),
            ];
            let mut story = Story::new(
                c.table.clone(),
                vec![Value::text("42")],
                shop.links(),
                3,
                false,
            )
            .unwrap();
            story
                .feed_transaction(baseline)
                .iter()
                .map(|related| path_text(&related.path))
                .collect()
        };
        assert_eq!(paths, vec!["customers 42 › orders 7", "customers 42"]);
    }

    #[test]
    fn depth_limits_how_far_links_are_followed() {
        let mut shop = Shop::new();
        let (c, o, i) = (
            shop.customers.clone(),
            shop.orders.clone(),
            shop.items.clone(),
        );
        let changes = vec![
            shop.change(&o, Op::Insert, None, Some(&["7", "42", "new"])),
            shop.change(&i, Op::Insert, None, Some(&["7", "1", "A"])),
        ];
        let mut story = Story::new(
            c.table.clone(),
            vec![Value::text("42")],
            shop.links(),
            1,
            false,
        )
        .unwrap();
        assert_eq!(told(&mut story, changes).len(), 1);
        assert_eq!(
            Story::new(c.table.clone(), vec![], shop.links(), 0, false).unwrap_err(),
            StoryError::Depth(0)
        );
        assert!(matches!(
            Story::new(i.table.clone(), vec![], shop.links(), 3, false),
            Err(StoryError::NoLinks(_))
        ));
    }

    #[test]
    fn up_follows_the_rows_the_root_points_at() {
        let mut shop = Shop::new();
        let (c, o) = (shop.customers.clone(), shop.orders.clone());
        let changes = vec![
            shop.change(&c, Op::Insert, None, Some(&["42", "Acme"])),
            shop.change(&c, Op::Insert, None, Some(&["43", "Other"])),
            shop.change(&o, Op::Insert, None, Some(&["7", "42", "new"])),
            shop.change(
                &c,
                Op::Update,
                Some(&["42", "Acme"]),
                Some(&["42", "Acme Ltd"]),
            ),
            shop.change(
                &c,
                Op::Update,
                Some(&["43", "Other"]),
                Some(&["43", "Other Ltd"]),
            ),
        ];
        let mut story = Story::new(
            o.table.clone(),
            vec![Value::text("7")],
            shop.links(),
            3,
            true,
        )
        .unwrap();
        assert_eq!(
            told(&mut story, changes),
            vec![
                (3, "orders 7".to_owned()),
                (4, "orders 7 › customers 42".to_owned()),
            ]
        );
    }
}
