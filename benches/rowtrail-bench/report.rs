//! The benchmark's report: machine facts and a Markdown table of figures, targets and ratios.

use std::fmt::Write as _;

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Figure {
    pub name: String,
    pub value: String,
    /// `None` when the figure has no target (it is shown for context).
    pub target: Option<Target>,
}

/// A target and how the value compares with it.
#[derive(Debug, Clone)]
pub struct Target {
    pub text: String,
    /// value / target for "at most" targets, value / target for "at least" ones too; `met` says
    /// which way is good.
    pub ratio: f64,
    pub met: bool,
}

impl Figure {
    pub fn info(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
            target: None,
        }
    }

    /// A figure that should be at most `limit` (in the same unit as `value`).
    pub fn at_most(name: impl Into<String>, value: f64, unit: &str, limit: f64) -> Self {
        let unit = match unit {
            "" => String::new(),
            unit => format!(" {unit}"),
        };
        Self {
            name: name.into(),
            value: format!("{}{unit}", round(value)),
            target: Some(Target {
                text: format!("≤ {}{unit}", round(limit)),
                ratio: value / limit,
                met: value <= limit,
            }),
        }
    }
}

impl Figure {
    /// A figure that should be at least `floor`.
    pub fn at_least(name: impl Into<String>, value: f64, unit: &str, floor: f64) -> Self {
        let shown = |number: f64| match number >= 10_000.0 {
            true => thousands(number as u64),
            false => round(number),
        };
        let space = if unit.is_empty() || unit.starts_with('/') {
            ""
        } else {
            " "
        };
        Self {
            name: name.into(),
            value: format!("{}{space}{unit}", shown(value)),
            target: Some(Target {
                text: format!("≥ {}{space}{unit}", shown(floor)),
                ratio: value / floor,
                met: value >= floor,
            }),
        }
    }
}

pub use rowtrail::ui::thousands;

/// Three significant digits, without trailing noise.
pub fn round(value: f64) -> String {
    match value.abs() {
        v if v >= 1000.0 => format!("{:.0}", value),
        v if v >= 100.0 => format!("{:.0}", value),
        v if v >= 10.0 => format!("{:.1}", value),
        v if v >= 1.0 => format!("{:.2}", value),
        _ => format!("{:.3}", value),
    }
}

/// The machine the figures come from.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|name| name.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("MemTotal:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kilobytes| kilobytes.parse::<f64>().ok())
        })
        .map_or(0.0, |kilobytes| kilobytes / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cpu}, {cores} cores, {memory:.0} GiB RAM, Linux {}",
        kernel.trim()
    )
}

/// A section of the report as Markdown.
pub fn table(title: &str, figures: &[Figure]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### {title}\n");
    let _ = writeln!(out, "| Figure | Value | Target | Ratio | Met |");
    let _ = writeln!(out, "|---|---:|---:|---:|:---:|");
    for figure in figures {
        match &figure.target {
            Some(target) => {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {:.2} | {} |",
                    figure.name,
                    figure.value,
                    target.text,
                    target.ratio,
                    if target.met { "yes" } else { "**no**" }
                );
            }
            None => {
                let _ = writeln!(out, "| {} | {} | | | |", figure.name, figure.value);
            }
        }
    }
    out
}

const RESULTS_START: &str = "<!-- results:start -->";
const RESULTS_END: &str = "<!-- results:end -->";

/// Writes `results` into the report at `path` between its results markers, keeping what is written
/// around them (the analysis of the figures); a new report gets a title and the markers.
pub fn write_results(path: &std::path::Path, results: &str) -> std::io::Result<()> {
    let existing = std::fs::read_to_string(path).unwrap_or_default();
    let text = match (existing.find(RESULTS_START), existing.find(RESULTS_END)) {
        (Some(start), Some(end)) if start < end => format!(
            "{}{RESULTS_START}\n{results}{}",
            &existing[..start],
            &existing[end..]
        ),
        _ => format!("# rowtrail benchmarks\n\n{RESULTS_START}\n{results}{RESULTS_END}\n"),
    };
    std::fs::write(path, text)
}
