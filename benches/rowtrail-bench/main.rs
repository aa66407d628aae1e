//! rowtrail's benchmarks: `cargo run --release --bin rowtrail-bench -- <part>`. Each part prints a
//! Markdown table with the machine, each figure, its target and the ratio.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A benchmark that cannot set itself up should stop loudly.

mod capture;
mod following;
mod gui;
mod import;
mod latency;
mod overhead;
mod queries;
mod report;
mod server;
mod shared;
mod stats;
mod synthetic;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use clap::{Parser, Subcommand};
use rowtrail::model::Xid;

use report::{Figure, machine, table};

/// rowtrail's benchmarks.
#[derive(Debug, Parser)]
#[command(name = "rowtrail-bench")]
struct Cli {
    /// Where generated caches and servers live (kept between runs).
    #[arg(long, default_value = "target/bench")]
    dir: PathBuf,
    /// Small sizes, for CI: checks that every part still works, in a few minutes.
    #[arg(long)]
    quick: bool,
    #[command(subcommand)]
    part: Part,
}

#[derive(Debug, Subcommand)]
enum Part {
    /// Capture throughput against pg_recvlogical, rowtrail's memory, and the cache's size.
    Capture,
    /// GUI frames on a synthetic cache: first frame, frame times while scrolling and jumping, memory.
    Gui {
        /// Changes in the synthetic cache (default 10,000,000; 200,000 with --quick).
        #[arg(long)]
        changes: Option<u64>,
    },
    /// Source overhead: pgbench TPS with no slot, with rowtrail capture following, and with an
    /// audit trigger.
    Overhead,
    /// Commit-to-cache latency at half of rowtrail's capture rate (measured first unless given).
    Latency {
        /// Changes per second to offer instead of half the measured capture rate.
        #[arg(long)]
        rate: Option<f64>,
    },
    /// Every part, one after another, written to BENCHMARKS.md (target/bench/BENCHMARKS-quick.md
    /// with --quick).
    All,
    /// Cache queries on a synthetic cache: open, pages, a record's history, a record and a table at
    /// a moment, the undo script of a 10,000-change transaction.
    Queries {
        /// Changes in the synthetic cache (default 10,000,000; 200,000 with --quick).
        #[arg(long)]
        changes: Option<u64>,
    },
    /// Import rate per audit-store format: one workload written through every store, then
    /// `rowtrail import` of each.
    Import {
        /// Row changes in the workload (default 100,000; 5,000 with --quick).
        #[arg(long)]
        changes: Option<u64>,
    },
    /// The shared store on PostgreSQL beside the cache file: the synthetic cache published
    /// into a store, then the query part on both.
    Shared {
        /// Changes in the synthetic cache (default 10,000,000; 200,000 with --quick).
        #[arg(long)]
        changes: Option<u64>,
        /// Query this store instead of publishing one (it must hold the same synthetic cache:
        /// `rowtrail publish --cache target/bench/synthetic-…rowtrail --into URL`).
        #[arg(long, value_name = "URL")]
        store: Option<String>,
    },
    /// The app's CPU in a real window under Xvfb: following the demo's capture with about ten
    /// changes a second, and at rest on a static cache.
    Following,
    /// Internal: measures the GUI in a process of its own and prints JSON.
    #[command(hide = true)]
    MeasureGui { cache: PathBuf, frames: usize },
}

const SEED: u64 = 7;

/// A synthetic cache with `changes` changes, generated once and reused, and the xid of its bulk
/// transaction.
fn synthetic_cache(dir: &Path, changes: u64) -> (PathBuf, Xid) {
    std::fs::create_dir_all(dir).unwrap();
    let path = synthetic::path_for(dir, changes, SEED);
    let done = path.with_extension("done");
    if let Ok(bulk) = std::fs::read_to_string(&done)
        && path.exists()
    {
        return (path, Xid(bulk.trim().parse().unwrap()));
    }
    let _ = std::fs::remove_file(&path);
    eprintln!(
        "generating a synthetic cache of {changes} changes at {}",
        path.display()
    );
    let started = Instant::now();
    let bulk = synthetic::build(&path, changes, SEED, |written| {
        eprint!("\r  {written} changes");
    })
    .unwrap();
    eprintln!(
        "\r  {changes} changes in {:.0} s (bulk transaction xid {bulk})",
        started.elapsed().as_secs_f64()
    );
    std::fs::write(&done, bulk.to_string()).unwrap();
    (path, bulk)
}

fn gui(dir: &Path, changes: u64, frames: usize) -> Vec<Figure> {
    let (cache, _) = synthetic_cache(dir, changes);
    let output = Command::new(std::env::current_exe().unwrap())
        .args(["measure-gui"])
        .arg(&cache)
        .arg(frames.to_string())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "GUI measurement failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let figures: gui::GuiFigures = serde_json::from_slice(&output.stdout).unwrap();
    vec![
        Figure::info("changes in the cache", report::thousands(figures.rows)),
        Figure::at_most("time to first frame", figures.first_frame_ms, "ms", 500.0),
        Figure::at_most("first rows on screen", figures.first_rows_ms, "ms", 50.0),
        Figure::at_most(
            "timeline index complete (background)",
            figures.index_ms / 1000.0,
            "s",
            5.0,
        ),
        Figure::info(
            "frame time while scrolling, median",
            format!("{} ms", report::round(figures.scroll_p50_ms)),
        ),
        Figure::at_most(
            "frame time while scrolling, p99",
            figures.scroll_p99_ms,
            "ms",
            8.0,
        ),
        Figure::info(
            "frame time while jumping, median",
            format!("{} ms", report::round(figures.jump_p50_ms)),
        ),
        Figure::at_most(
            "frame time while jumping, p99",
            figures.jump_p99_ms,
            "ms",
            8.0,
        ),
        Figure::info(
            "rows on screen after a jump, median / p99",
            format!(
                "{} / {} ms",
                report::round(figures.rows_after_jump_p50_ms),
                report::round(figures.rows_after_jump_p99_ms)
            ),
        ),
        Figure::at_most(
            "peak memory of the app process",
            figures.peak_rss_mb,
            "MB",
            300.0,
        ),
    ]
}

fn query_figures(dir: &Path, changes: u64, quick: bool) -> Vec<Figure> {
    let (cache, bulk) = synthetic_cache(dir, changes);
    let figures = queries::measure(&cache, bulk, quick);
    let both = |name: String, timing: &queries::Timing| {
        let p50 = report::round(timing.p50());
        let p99 = report::round(timing.p99());
        Figure::info(format!("{name}, p50 / p99"), format!("{p50} / {p99} ms"))
    };
    // A timing with a target: p50 / p99 for context, then the p99 against the target.
    let targeted = |name: &str, timing: &queries::Timing, limit_ms: f64| {
        let p99 = timing.p99();
        let limit = match limit_ms >= 1000.0 {
            true => Figure::at_most(format!("{name}, p99"), p99 / 1000.0, "s", limit_ms / 1000.0),
            false => Figure::at_most(format!("{name}, p99"), p99, "ms", limit_ms),
        };
        [both(name.to_owned(), timing), limit]
    };
    let count = |value: usize| report::thousands(value as u64);
    let mut rows = vec![Figure::info(
        "changes in the cache",
        report::thousands(figures.changes as u64),
    )];
    rows.extend(targeted(
        "open (tables, newest change, time span)",
        &figures.open,
        500.0,
    ));
    rows.extend(targeted(
        "first timeline page (100 rows)",
        &figures.first_page,
        20.0,
    ));
    rows.extend(targeted(
        "timeline page at a random position",
        &figures.random_page,
        20.0,
    ));
    rows.extend(targeted(
        "one table's timeline page at a random position",
        &figures.random_table_page,
        20.0,
    ));
    rows.push(both(
        "one record's history (record of a random change)".to_owned(),
        &figures.record_history,
    ));
    rows.push(both(
        format!(
            "history of the record with {} versions",
            count(figures.hot_versions)
        ),
        &figures.hot_history,
    ));
    rows.extend(targeted(
        "that record at a random moment",
        &figures.record_at,
        10.0,
    ));
    rows.extend(targeted(
        &format!("{}-row table at a moment", count(figures.table_rows)),
        &figures.table_at,
        500.0,
    ));
    rows.extend(targeted(
        &format!(
            "undo script of a {}-change transaction",
            count(figures.undo_changes)
        ),
        &figures.undo,
        1000.0,
    ));
    rows.push(Figure::info(
        "related history: first read, building the index of references",
        format!("{} s", report::round(figures.related_first / 1000.0)),
    ));
    rows.extend(targeted(
        &format!(
            "related history of customer 42 ({} changes in {} tables), first page",
            count(figures.story_changes),
            figures.story_tables
        ),
        &figures.related,
        300.0,
    ));
    rows.extend(targeted(
        &format!(
            "search customer_id:42 ({} matches on the first page)",
            figures.rare_matches
        ),
        &figures.rare_search,
        200.0,
    ));
    rows.extend(targeted(
        "search status:cancelled, first page",
        &figures.common_search,
        200.0,
    ));
    rows.extend(targeted(
        &format!(
            "view customers where plan = 'pro', first page ({} changes)",
            count(figures.view_changes)
        ),
        &figures.view,
        200.0,
    ));
    rows
}

fn shared_figures(dir: &Path, changes: u64, quick: bool, store: Option<&str>) -> Vec<Figure> {
    let (cache, bulk) = synthetic_cache(dir, changes);
    let figures = match store {
        Some(url) => shared::measure_published(url, &cache, bulk, quick),
        None => shared::measure(
            &server::Server::start(server::Durability::Fast),
            &cache,
            bulk,
            quick,
        ),
    };
    let mut rows = Vec::new();
    // Only when this run published the store itself.
    if figures.published > 0 {
        rows.extend([
            Figure::info(
                "changes published (capture --into's copy), time and rate",
                format!(
                    "{} in {} s, {}/s",
                    report::thousands(figures.published),
                    report::round(figures.publish_seconds),
                    report::thousands((figures.published as f64 / figures.publish_seconds) as u64)
                ),
            ),
            Figure::info(
                "size: store tables with indexes / cache file",
                format!(
                    "{} MB / {} MB",
                    report::round(figures.store_bytes as f64 / 1e6),
                    report::round(figures.file_bytes as f64 / 1e6)
                ),
            ),
        ]);
    }
    let (file, store) = (&figures.file, &figures.store);
    let side = |name: &str, file: &queries::Timing, store: &queries::Timing| {
        Figure::info(
            format!("{name}, p50 / p99: file · store"),
            format!(
                "{} / {} ms · {} / {} ms",
                report::round(file.p50()),
                report::round(file.p99()),
                report::round(store.p50()),
                report::round(store.p99())
            ),
        )
    };
    rows.extend([
        side(
            "open (tables, newest change, time span)",
            &file.open,
            &store.open,
        ),
        side(
            "first timeline page (100 rows)",
            &file.first_page,
            &store.first_page,
        ),
        side(
            "timeline page at a random position",
            &file.random_page,
            &store.random_page,
        ),
        side(
            "one table's timeline page at a random position",
            &file.random_table_page,
            &store.random_table_page,
        ),
        side(
            "one record's history (record of a random change)",
            &file.record_history,
            &store.record_history,
        ),
        side(
            "that record at a random moment",
            &file.record_at,
            &store.record_at,
        ),
        side(
            &format!(
                "{}-row table at a moment",
                report::thousands(file.table_rows as u64)
            ),
            &file.table_at,
            &store.table_at,
        ),
        side(
            &format!(
                "undo script of a {}-change transaction",
                report::thousands(file.undo_changes as u64)
            ),
            &file.undo,
            &store.undo,
        ),
        side(
            "related history of customer 42, first page",
            &file.related,
            &store.related,
        ),
        side(
            "search customer_id:42",
            &file.rare_search,
            &store.rare_search,
        ),
        side(
            "search status:cancelled, first page",
            &file.common_search,
            &store.common_search,
        ),
        side("view customers where plan = 'pro'", &file.view, &store.view),
    ]);
    rows
}

fn import_figures(dir: &Path, changes: u64) -> Vec<Figure> {
    let server = server::Server::start(server::Durability::Fast);
    let work = dir.join("import");
    std::fs::create_dir_all(&work).unwrap();
    let runs = import::measure(&server, &work, changes);
    let mut figures = vec![Figure::info(
        "workload: changes in transactions of 100 (inserts, updates, deletes)",
        report::thousands(changes),
    )];
    for run in &runs {
        figures.push(Figure::info(
            format!(
                "{}: time, rate, peak memory, cache bytes per change",
                run.format
            ),
            format!(
                "{} s, {}/s, {} MB, {} B ({} transactions)",
                report::round(run.seconds),
                report::thousands(run.rate() as u64),
                report::round(run.peak_mb),
                report::round(run.cache_bytes as f64 / run.changes as f64),
                report::thousands(run.transactions)
            ),
        ));
    }
    figures
}

fn capture_runs(dir: &Path, quick: bool) -> Vec<capture::CaptureRun> {
    let server = server::Server::start(server::Durability::Fast);
    let scale = if quick { 0.05 } else { 1.0 };
    let work = dir.join("capture");
    std::fs::create_dir_all(&work).unwrap();
    capture::workloads(scale)
        .iter()
        .map(|workload| capture::run(&server, workload, &work))
        .collect()
}

fn capture_figures(runs: &[capture::CaptureRun]) -> Vec<Figure> {
    let mut figures = Vec::new();
    for (index, run) in runs.iter().enumerate() {
        let letter = ['a', 'b', 'c'][index.min(2)];
        figures.push(Figure::info(
            format!("({letter}) {}: changes", run.name),
            report::thousands(run.changes),
        ));
        figures.push(Figure::info(
            format!("({letter}) pg_recvlogical, pgoutput to /dev/null"),
            format!("{}/s", report::thousands(run.recvlogical_rate() as u64)),
        ));
        let rate = run.rowtrail_rate();
        figures.push(match index {
            0 => Figure::at_least("(a) rowtrail capture --once", rate, "/s", 40_000.0),
            _ => Figure::info(
                format!("({letter}) rowtrail capture --once"),
                format!("{}/s", report::thousands(rate as u64)),
            ),
        });
        if let Some([preparing, streaming, finishing]) = run.rowtrail_phases {
            let outside = run.rowtrail_seconds - preparing - streaming - finishing;
            figures.push(Figure::info(
                format!("({letter}) rowtrail's time: preparing · streaming · finishing · process start and exit"),
                format!("{preparing:.2} · {streaming:.2} · {finishing:.2} · {outside:.2} s"),
            ));
        }
        figures.push(Figure::info(
            format!("({letter}) the server's spill to disk · streamed before commit"),
            format!(
                "{} · {} MB",
                report::round(run.server_spill_bytes as f64 / 1e6),
                report::round(run.streamed_bytes as f64 / 1e6)
            ),
        ));
        figures.push(Figure::at_least(
            format!("({letter}) rowtrail / pg_recvlogical"),
            rate / run.recvlogical_rate(),
            "",
            0.95,
        ));
        figures.push(Figure::at_most(
            format!("({letter}) rowtrail peak memory"),
            run.rowtrail_peak_mb,
            "MB",
            256.0,
        ));
    }
    figures
}

fn size_figures(runs: &[capture::CaptureRun]) -> Vec<Figure> {
    runs.iter()
        .enumerate()
        .flat_map(|(index, run)| {
            let letter = ['a', 'b', 'c'][index.min(2)];
            let cache = run.cache_bytes as f64 / run.changes as f64;
            let sent = run.pgoutput_bytes as f64 / run.changes as f64;
            [
                Figure::info(
                    format!("({letter}) bytes per change: cache / pgoutput"),
                    format!("{} / {} B", report::round(cache), report::round(sent)),
                ),
                Figure::at_most(
                    format!("({letter}) cache bytes / pgoutput bytes"),
                    cache / sent,
                    "×",
                    1.5,
                ),
            ]
        })
        .collect()
}

fn overhead_figures(dir: &Path, quick: bool) -> Vec<Figure> {
    let server = server::Server::start(server::Durability::Production);
    let (seconds, scale, rounds) = if quick { (2, 1, 3) } else { (10, 10, 15) };
    let work = dir.join("overhead");
    std::fs::create_dir_all(&work).unwrap();
    let figures = overhead::measure(&server, &work, seconds, scale, rounds);
    let interval = |estimate: overhead::Estimate| {
        format!(
            "{} (95% CI {} to {})",
            report::round(estimate.median),
            report::round(estimate.low),
            report::round(estimate.high)
        )
    };
    vec![
        Figure::info(
            "pgbench TPC-B-like, 2 clients, interleaved rounds",
            format!(
                "{} rounds of 3 runs of {} s, scale {}",
                figures.rounds, figures.seconds, figures.scale
            ),
        ),
        Figure::info(
            "TPS without capture, median",
            report::round(figures.no_capture_tps),
        ),
        Figure::info(
            "TPS, rowtrail capture following, median",
            report::round(figures.rowtrail_tps),
        ),
        Figure::info(
            "TPS, audit trigger (jsonb old/new), median",
            report::round(figures.trigger_tps),
        ),
        Figure::at_least(
            "rowtrail / without capture, median of rounds",
            figures.rowtrail_ratio.median,
            "",
            0.97,
        ),
        Figure::info(
            "rowtrail / without capture, 95% CI",
            interval(figures.rowtrail_ratio),
        ),
        Figure::info(
            "audit trigger / without capture",
            interval(figures.trigger_ratio),
        ),
        Figure::at_most(
            "rowtrail's TPS loss / the trigger's",
            figures.loss_ratio.median,
            "",
            0.2,
        ),
        Figure::info(
            "rowtrail's TPS loss / the trigger's, 95% CI",
            interval(figures.loss_ratio),
        ),
        Figure::info(
            "changes captured during the rowtrail runs / made",
            format!(
                "{} / {}",
                report::thousands(figures.captured.max(0) as u64),
                report::thousands(figures.expected.max(0) as u64)
            ),
        ),
        Figure::info(
            "rowtrail's CPU during its runs (share of one core)",
            format!("{:.0}%", figures.rowtrail_cpu * 100.0),
        ),
        Figure::info(
            "rowtrail's CPU per change: catching up",
            format!(
                "{} µs ({} changes)",
                report::round(figures.catch_up_us_per_change),
                report::thousands(figures.catch_up_changes.max(0) as u64)
            ),
        ),
        Figure::at_most(
            "rowtrail's CPU per change: following / catching up",
            figures.cpu_us_per_change / figures.catch_up_us_per_change.max(f64::EPSILON),
            "×",
            2.0,
        ),
        Figure::info(
            "capture caught up after pgbench stopped, median",
            format!("{} ms", report::round(figures.catch_up_ms)),
        ),
    ]
}

fn latency_figures(dir: &Path, quick: bool, rate: f64) -> Vec<Figure> {
    let server = server::Server::start(server::Durability::Fast);
    let work = dir.join("latency");
    std::fs::create_dir_all(&work).unwrap();
    let seconds = if quick { 3.0 } else { 30.0 };
    let figures = latency::measure(&server, &work, rate, seconds);
    vec![
        Figure::info(
            "offered rate (half of rowtrail's small-row capture rate)",
            format!("{}/s", report::thousands(figures.offered as u64)),
        ),
        Figure::info(
            "rate the marker generator reached",
            format!("{}/s", report::thousands(figures.achieved as u64)),
        ),
        Figure::info(
            "marker transactions (10 rows each)",
            report::thousands(figures.transactions as u64),
        ),
        Figure::info(
            "commit to cache, median",
            format!("{} ms", report::round(figures.p50_ms)),
        ),
        Figure::at_most("commit to cache, p99", figures.p99_ms, "ms", 250.0),
        Figure::info(
            "commit to cache, max",
            format!("{} ms", report::round(figures.max_ms)),
        ),
    ]
}

/// Half of rowtrail's rate on the small-row workload, measured at the quick size.
fn half_capture_rate(dir: &Path) -> f64 {
    let server = server::Server::start(server::Durability::Fast);
    let work = dir.join("capture");
    std::fs::create_dir_all(&work).unwrap();
    let workload = capture::workloads(0.2).remove(0);
    capture::run(&server, &workload, &work).rowtrail_rate() / 2.0
}

fn following_figures(dir: &Path, quick: bool) -> Vec<Figure> {
    if let Some(reason) = following::unavailable() {
        return vec![Figure::info("skipped", reason)];
    }
    let (warmup, span) = match quick {
        true => (20, 15),
        false => (30, 60),
    };
    let figures = following::measure(
        dir,
        std::time::Duration::from_secs(warmup),
        std::time::Duration::from_secs(span),
    );
    let percent = |share: f64| share * 100.0;
    let busiest = |cpu: &following::WindowCpu| {
        cpu.busiest
            .iter()
            .map(|(name, share)| format!("{name} {:.1}%", percent(*share)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    vec![
        Figure::info(
            "following: changes stored per second",
            report::round(figures.changes_per_second),
        ),
        Figure::at_most(
            "following: the app's own threads (share of one core)",
            percent(figures.following.app),
            "%",
            10.0,
        ),
        Figure::info(
            "following: its busiest threads",
            busiest(&figures.following),
        ),
        Figure::info(
            "following: the software rasterizer (llvmpipe; a GPU's work elsewhere)",
            format!("{:.1}%", percent(figures.following.rasterizer)),
        ),
        Figure::info(
            "following: the whole process",
            format!("{:.1}%", percent(figures.following.total())),
        ),
        Figure::at_most(
            "at rest on a static cache: the whole process",
            percent(figures.at_rest.total()),
            "%",
            0.5,
        ),
    ]
}

fn print_section(title: &str, figures: &[Figure]) -> String {
    let text = table(title, figures);
    println!("{text}");
    text
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let header = format!("Machine: {}, {}\n", machine(), server::postgres_version());
    let synthetic_size =
        |changes: Option<u64>| changes.unwrap_or(if cli.quick { 200_000 } else { 10_000_000 });
    let gui_frames = if cli.quick { 120 } else { 600 };
    match cli.part {
        Part::MeasureGui { cache, frames } => {
            let figures = gui::measure(&cache, frames);
            println!("{}", serde_json::to_string(&figures).unwrap());
        }
        Part::Capture => {
            let runs = capture_runs(&cli.dir, cli.quick);
            println!("{header}");
            print_section(CAPTURE, &capture_figures(&runs));
            print_section(SIZE, &size_figures(&runs));
        }
        Part::Overhead => {
            let figures = overhead_figures(&cli.dir, cli.quick);
            println!("{header}");
            print_section(OVERHEAD, &figures);
        }
        Part::Latency { rate } => {
            let rate = rate.unwrap_or_else(|| half_capture_rate(&cli.dir));
            let figures = latency_figures(&cli.dir, cli.quick, rate);
            println!("{header}");
            print_section(LATENCY, &figures);
        }
        Part::Queries { changes } => {
            let figures = query_figures(&cli.dir, synthetic_size(changes), cli.quick);
            println!("{header}");
            print_section(QUERIES, &figures);
        }
        Part::Import { changes } => {
            let changes = changes.unwrap_or(if cli.quick { 5_000 } else { 100_000 });
            let figures = import_figures(&cli.dir, changes);
            println!("{header}");
            print_section(IMPORT, &figures);
        }
        Part::Shared { changes, store } => {
            let figures = shared_figures(
                &cli.dir,
                synthetic_size(changes),
                cli.quick,
                store.as_deref(),
            );
            println!("{header}");
            print_section(SHARED, &figures);
        }
        Part::Following => {
            let figures = following_figures(&cli.dir, cli.quick);
            println!("{header}");
            print_section(FOLLOWING, &figures);
        }
        Part::Gui { changes } => {
            let figures = gui(&cli.dir, synthetic_size(changes), gui_frames);
            println!("{header}");
            print_section(GUI, &figures);
        }
        Part::All => {
            let started = Instant::now();
            println!("{header}");
            let runs = capture_runs(&cli.dir, cli.quick);
            let mut sections = vec![
                print_section(CAPTURE, &capture_figures(&runs)),
                print_section(SIZE, &size_figures(&runs)),
            ];
            sections.push(print_section(
                OVERHEAD,
                &overhead_figures(&cli.dir, cli.quick),
            ));
            let rate = runs[0].rowtrail_rate() / 2.0;
            sections.push(print_section(
                LATENCY,
                &latency_figures(&cli.dir, cli.quick, rate),
            ));
            let size = synthetic_size(None);
            sections.push(print_section(
                QUERIES,
                &query_figures(&cli.dir, size, cli.quick),
            ));
            sections.push(print_section(GUI, &gui(&cli.dir, size, gui_frames)));
            sections.push(print_section(
                FOLLOWING,
                &following_figures(&cli.dir, cli.quick),
            ));
            let import_size = if cli.quick { 5_000 } else { 100_000 };
            sections.push(print_section(
                IMPORT,
                &import_figures(&cli.dir, import_size),
            ));
            sections.push(print_section(
                SHARED,
                &shared_figures(&cli.dir, size, cli.quick, None),
            ));
            let command = format!(
                "cargo run --release --bin rowtrail-bench --{} all",
                if cli.quick { " --quick" } else { "" }
            );
            let results = format!(
                "Made by `{command}` on {} in {:.0} s.\n\n{header}\n{}",
                chrono::Utc::now().format("%Y-%m-%d"),
                started.elapsed().as_secs_f64(),
                sections.join("\n")
            );
            let path = if cli.quick {
                cli.dir.join("BENCHMARKS-quick.md")
            } else {
                PathBuf::from("BENCHMARKS.md")
            };
            report::write_results(&path, &results).unwrap();
            eprintln!("wrote {}", path.display());
        }
    }
    ExitCode::SUCCESS
}

const CAPTURE: &str = "Capture throughput";
const SIZE: &str = "Cache size";
const OVERHEAD: &str = "Source overhead (production durability: fsync, synchronous_commit on)";
const LATENCY: &str = "Commit-to-cache latency";
const QUERIES: &str = "Cache queries (warm file cache)";
const GUI: &str = "GUI frames (headless, UI thread time per frame)";
const SHARED: &str =
    "Shared store on PostgreSQL beside the cache file (same queries, store over TCP)";
const IMPORT: &str = "Import from audit stores (whole process, per format)";
const FOLLOWING: &str =
    "The app in a window (Xvfb, no GPU): CPU following a live capture, and at rest";
