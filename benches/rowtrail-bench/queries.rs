//! Cache queries on a synthetic cache, through the same library calls the app and the command line
//! make: open, timeline pages, one record's history, a record and a table at a moment, and the undo
//! script of the 10,000-change transaction, a customer's related history, a `column:value`
//! search and a view. Each is run once to warm the file cache, then repeated and reported as
//! p50 / p99.

use std::path::Path;
use std::time::Instant;

use rowtrail::history::state::TableAt;
use rowtrail::model::Moment;
use rowtrail::model::{ChangeId, SavedView, Search, TableName, Xid};
use rowtrail::related::{StoryOptions, related_history, related_newest, view_newest};
use rowtrail::restore::{UndoTarget, undo_script};
use rowtrail::store::{KeyFilter, LogFilter};

use crate::stats::{millis, percentile};
use crate::synthetic::HOT_CUSTOMER;

/// Rows per timeline page: more than a tall window shows.
const PAGE: usize = 100;

/// Timings of one query, in milliseconds.
pub struct Timing {
    pub samples: Vec<f64>,
}

impl Timing {
    pub fn p50(&self) -> f64 {
        percentile(&self.samples, 0.5)
    }

    pub fn p99(&self) -> f64 {
        percentile(&self.samples, 0.99)
    }
}

/// What the part measured.
pub struct QueryFigures {
    pub changes: i64,
    pub open: Timing,
    pub first_page: Timing,
    pub random_page: Timing,
    pub random_table_page: Timing,
    pub record_history: Timing,
    pub hot_history: Timing,
    pub hot_versions: usize,
    pub record_at: Timing,
    pub table_at: Timing,
    pub table_rows: usize,
    pub undo: Timing,
    pub undo_changes: usize,
    /// The first related history read: it builds the index of references.
    pub related_first: f64,
    pub related: Timing,
    pub story_changes: usize,
    pub story_tables: usize,
    pub rare_search: Timing,
    pub rare_matches: usize,
    pub common_search: Timing,
    pub view: Timing,
    pub view_changes: usize,
}

/// Times `runs` calls of `run`, after one untimed call that brings the pages it reads into the
/// file cache.
fn time<T>(runs: usize, mut run: impl FnMut(usize) -> T) -> Timing {
    std::hint::black_box(run(0));
    let samples = (0..runs)
        .map(|index| {
            let started = Instant::now();
            std::hint::black_box(run(index));
            millis(started.elapsed())
        })
        .collect();
    Timing { samples }
}

/// A deterministic spread of numbers in `1..=bound`.
fn spread(index: usize, bound: i64) -> i64 {
    let mixed = (index as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
    (mixed % bound.max(1) as u64) as i64 + 1
}

pub fn measure(path: &Path, bulk: Xid, quick: bool) -> QueryFigures {
    let runs = if quick { 20 } else { 200 };
    let slow_runs = if quick { 3 } else { 10 };
    let open = time(slow_runs, |_| {
        let cache = rowtrail::shared::open_cache(path).unwrap();
        let tables = cache.tables().unwrap();
        let newest = cache.newest_change().unwrap();
        (tables.len(), newest, cache.time_span().unwrap())
    });
    let cache = rowtrail::shared::open_cache(path).unwrap();
    let newest = cache.newest_change().unwrap();
    let everything = LogFilter::default();
    let first_page = time(runs, |_| {
        let page = cache.page(&everything, newest, 0, PAGE).unwrap();
        assert_eq!(page.len(), PAGE);
    });
    // The timeline jumps to a position through its rank index, which hands the page query an id
    // to start below.
    let random_page = time(runs, |index| {
        let top = ChangeId(spread(index, newest.0 - PAGE as i64) + PAGE as i64);
        cache.page(&everything, top, 0, PAGE).unwrap()
    });
    let orders = LogFilter {
        table: Some(TableName::new("public", "orders")),
        ..LogFilter::default()
    };
    let random_table_page = time(runs, |index| {
        let top = ChangeId(spread(index, newest.0));
        cache.page(&orders, top, 0, PAGE).unwrap()
    });
    // A record picked the way a user does: by clicking a change on the timeline.
    let keyed: Vec<_> = (0..runs)
        .filter_map(|index| {
            let change = cache.change(ChangeId(spread(index, newest.0))).unwrap()?;
            (!change.schema.key.is_empty()).then(|| cache.record_of(&change).unwrap())
        })
        .collect();
    let record_history = time(keyed.len(), |index| {
        cache.record_history(&keyed[index]).unwrap()
    });
    let customers = TableName::new("public", "customers");
    let mut key = serde_json::Map::new();
    key.insert("id".into(), HOT_CUSTOMER.into());
    let hot = cache.record(&customers, &KeyFilter(key)).unwrap();
    let mut hot_versions = 0;
    let hot_history = time(slow_runs, |_| {
        hot_versions = cache.record_history(&hot).unwrap().len();
    });
    let record_at = time(runs, |index| {
        let cut = ChangeId(spread(index, newest.0));
        cache.record_at(&hot, cut).unwrap()
    });
    let middle = cache
        .resolve_moment(Moment::AfterChange(ChangeId(newest.0 / 2)))
        .unwrap();
    let mut table_rows = 0;
    let table_at = time(slow_runs, |_| {
        table_rows = 0;
        let mut rows = TableAt::default();
        cache
            .table_at(&customers, middle, |change| {
                table_rows += usize::from(rows.take(change).is_some());
                Ok(())
            })
            .unwrap();
        table_rows += rows.finish().count();
    });
    let mut undo_changes = 0;
    let undo = time(slow_runs, |_| {
        let script =
            undo_script(&cache, &UndoTarget::Transaction(bulk), false, true, false).unwrap();
        undo_changes = script.undone.len();
        script.sql.len()
    });
    // The hot customer's story: its own 10,000 versions, its orders, their items, its tickets.
    let options = StoryOptions::default();
    let started = Instant::now();
    std::hint::black_box(related_history(&cache, &hot, &options).unwrap());
    let related_first = millis(started.elapsed());
    let (story_changes, story_tables) = {
        let story = related_history(&cache, &hot, &options).unwrap();
        let mut tables: Vec<&TableName> =
            story.iter().map(|related| &related.change.table).collect();
        tables.sort();
        tables.dedup();
        (story.len(), tables.len())
    };
    // The first page: the newest changes, as the app and `rowtrail related` read it.
    let related = time(slow_runs, |_| {
        related_newest(&cache, &hot, &options, PAGE).unwrap()
    });
    // A search for a value few changes hold (the hot customer's orders and tickets), and for one
    // many hold.
    let searching = |terms: &str| LogFilter {
        search: Some(Search::parse(terms).unwrap()),
        ..LogFilter::default()
    };
    let rare = searching(&format!("customer_id:{HOT_CUSTOMER}"));
    let mut rare_matches = 0;
    let rare_search = time(slow_runs, |_| {
        let page = cache.page(&rare, newest, 0, PAGE).unwrap();
        rare_matches = page.len();
        page
    });
    let common = searching("status:cancelled");
    let common_search = time(runs, |_| cache.page(&common, newest, 0, PAGE).unwrap());
    // A view: the customers on the pro plan, its newest changes.
    let view = SavedView {
        name: "pro customers".into(),
        tables: vec![customers.clone()],
        predicate: "plan = 'pro'".into(),
        context: Vec::new(),
        changed: Vec::new(),
    };
    let mut view_changes = 0;
    let view_timing = time(slow_runs, |_| {
        let newest = view_newest(&cache, &view, PAGE).unwrap();
        view_changes = newest.len();
        newest
    });
    let changes: i64 = cache
        .tables()
        .unwrap()
        .iter()
        .map(|table| table.change_count)
        .sum();
    QueryFigures {
        changes,
        open,
        first_page,
        random_page,
        random_table_page,
        record_history,
        hot_history,
        hot_versions,
        record_at,
        table_at,
        table_rows,
        undo,
        undo_changes,
        related_first,
        related,
        story_changes,
        story_tables,
        rare_search,
        rare_matches,
        common_search,
        view: view_timing,
        view_changes,
    }
}
