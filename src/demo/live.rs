//! Runs the shop's story on a live PostgreSQL: the rows as SQL, and a simulator thread that sends
//! one transaction after another, each opened by the context message an application would send.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::capture::CaptureError;
use crate::history::sql::quote_literal;
use crate::model::quote_ident;

use super::shop::{Row, Shop, Step, Table, Transaction};

fn literal(value: &Option<String>, sql_type: &str) -> String {
    match value {
        Some(text) => format!("{}::{sql_type}", quote_literal(text)),
        None => "NULL".to_owned(),
    }
}

fn key_condition(table: Table, row: &Row) -> String {
    table
        .columns()
        .iter()
        .zip(row)
        .take(table.key_width())
        .map(|((name, sql_type), value)| {
            format!("{} = {}", quote_ident(name), literal(value, sql_type))
        })
        .collect::<Vec<_>>()
        .join(" AND ")
}

/// An INSERT of one row.
pub fn insert(table: Table, row: &Row) -> String {
    let names: Vec<String> = table
        .columns()
        .iter()
        .map(|(name, _)| quote_ident(name))
        .collect();
    let values: Vec<String> = table
        .columns()
        .iter()
        .zip(row)
        .map(|((_, sql_type), value)| literal(value, sql_type))
        .collect();
    format!(
        "INSERT INTO {} ({}) VALUES ({});",
        quote_ident(table.name()),
        names.join(", "),
        values.join(", ")
    )
}

/// One transaction as SQL, opened by its context message.
pub fn transaction(transaction: &Transaction) -> String {
    let context = serde_json::Value::Object(transaction.context.clone()).to_string();
    let mut sql = format!(
        "BEGIN;\nSELECT pg_logical_emit_message(true, 'rowtrail', {});\n",
        quote_literal(&context)
    );
    for step in &transaction.steps {
        let statement = match step {
            Step::Insert { table, row } => insert(*table, row),
            Step::Update { table, old, new } => {
                let sets: Vec<String> = table
                    .columns()
                    .iter()
                    .zip(old.iter().zip(new))
                    .filter(|(_, (before, after))| before != after)
                    .map(|((name, sql_type), (_, after))| {
                        format!("{} = {}", quote_ident(name), literal(after, sql_type))
                    })
                    .collect();
                format!(
                    "UPDATE {} SET {} WHERE {};",
                    quote_ident(table.name()),
                    sets.join(", "),
                    key_condition(*table, old)
                )
            }
            Step::Delete { table, old } => {
                format!(
                    "DELETE FROM {} WHERE {};",
                    quote_ident(table.name()),
                    key_condition(*table, old)
                )
            }
        };
        sql.push_str(&statement);
        sql.push('\n');
    }
    sql.push_str("COMMIT;");
    sql
}

/// How fast the simulator works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// About one transaction a second, to watch.
    Human,
    /// As fast as it goes, for `demo --check`.
    Fast,
}

/// The simulator thread.
pub struct Simulator {
    stop: Arc<AtomicBool>,
    changes: Arc<AtomicU64>,
    failure: Arc<std::sync::Mutex<Option<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl Simulator {
    /// Starts once the capture slot exists, so the story is captured as changes, not as baseline.
    pub fn start(conninfo: String, slot: String, shop: Shop, pace: Pace) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let changes = Arc::new(AtomicU64::new(0));
        let failure = Arc::new(std::sync::Mutex::new(None));
        let thread = {
            let (stop, changes, failure) = (stop.clone(), changes.clone(), failure.clone());
            std::thread::Builder::new()
                .name("rowtrail-demo-simulator".into())
                .spawn(move || {
                    let result = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|error| error.to_string())
                        .and_then(|runtime| {
                            runtime
                                .block_on(simulate(&conninfo, &slot, shop, pace, &stop, &changes))
                        });
                    if let (Err(error), Ok(mut slot)) = (result, failure.lock()) {
                        *slot = Some(error);
                    }
                })?
        };
        Ok(Self {
            stop,
            changes,
            failure,
            thread: Some(thread),
        })
    }

    /// Changes the simulator has committed.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }

    /// Why the simulator stopped, if it failed.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|failure| failure.clone())
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn simulate(
    conninfo: &str,
    slot: &str,
    mut shop: Shop,
    pace: Pace,
    stop: &AtomicBool,
    changes: &AtomicU64,
) -> Result<(), String> {
    let failed = |action: &str| {
        let action = action.to_owned();
        move |error| CaptureError::sql(&action, "the demo server", error).to_string()
    };
    let (client, connection) = tokio_postgres::connect(conninfo, tokio_postgres::NoTls)
        .await
        .map_err(failed("connecting the demo simulator"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let waiting = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let exists = client
            .query_opt(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .map_err(failed("waiting for the capture slot"))?
            .is_some();
        if exists {
            break;
        }
        if waiting.elapsed() > Duration::from_secs(120) {
            return Err("capture did not create its slot within two minutes".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let clock = || chrono::Utc::now().to_rfc3339();
    let mut turn = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let transaction = shop.next_transaction(&clock);
        client
            .batch_execute(&self::transaction(&transaction))
            .await
            .map_err(failed("running a demo transaction"))?;
        changes.fetch_add(transaction.steps.len() as u64, Ordering::Relaxed);
        turn += 1;
        let pause = match pace {
            Pace::Fast => Duration::from_millis(20),
            Pace::Human => Duration::from_millis(600 + (turn * 7919) % 1200),
        };
        let slept = Instant::now();
        while slept.elapsed() < pause && !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(50).min(pause)).await;
        }
    }
    Ok(())
}
