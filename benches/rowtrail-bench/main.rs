//! rowtrail's benchmarks: `cargo run --release --bin rowtrail-bench -- <part>`. Each part prints a
//! Markdown table with the machine, each figure, its target and the ratio.

#![allow(clippy::unwrap_used, clippy::expect_used)] // A benchmark that cannot set itself up should stop loudly.

mod gui;
mod report;
mod synthetic;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use clap::{Parser, Subcommand};

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
    /// GUI frames on a synthetic cache: first frame, frame times while scrolling and jumping, memory.
    Gui {
        /// Changes in the synthetic cache (default 10,000,000; 200,000 with --quick).
        #[arg(long)]
        changes: Option<u64>,
    },
    /// Internal: measures the GUI in a process of its own and prints JSON.
    #[command(hide = true)]
    MeasureGui { cache: PathBuf, frames: usize },
}

const SEED: u64 = 7;

/// A synthetic cache with `changes` changes, generated once and reused.
fn synthetic_cache(dir: &Path, changes: u64) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let path = synthetic::path_for(dir, changes, SEED);
    let done = path.with_extension("done");
    if path.exists() && done.exists() {
        return path;
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
    path
}

fn gui(dir: &Path, changes: u64, frames: usize) -> Vec<Figure> {
    let cache = synthetic_cache(dir, changes);
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
        Figure::info("changes in the cache", format!("{}", figures.rows)),
        Figure::at_most("time to first frame", figures.first_frame_ms, "ms", 500.0),
        Figure::info(
            "first rows on screen",
            format!("{} ms", report::round(figures.first_rows_ms)),
        ),
        Figure::info(
            "timeline index complete (background)",
            format!("{} s", report::round(figures.index_ms / 1000.0)),
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.part {
        Part::MeasureGui { cache, frames } => {
            let figures = gui::measure(&cache, frames);
            println!("{}", serde_json::to_string(&figures).unwrap());
        }
        Part::Gui { changes } => {
            let changes = changes.unwrap_or(if cli.quick { 200_000 } else { 10_000_000 });
            let frames = if cli.quick { 120 } else { 600 };
            let figures = gui(&cli.dir, changes, frames);
            println!("Machine: {}\n", machine());
            println!(
                "{}",
                table("GUI frames (headless, UI thread time per frame)", &figures)
            );
        }
    }
    ExitCode::SUCCESS
}
