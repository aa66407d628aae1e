//! Small measuring helpers shared by the parts: percentiles, peak memory from /proc, child
//! processes timed with their peak memory.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn percentile(values: &[f64], fraction: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        length => sorted[((length - 1) as f64 * fraction).round() as usize],
    }
}

pub fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Peak resident memory of a process (`"self"` or a pid), in MB, from /proc.
pub fn peak_rss_mb(process: &str) -> Option<f64> {
    std::fs::read_to_string(format!("/proc/{process}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmHWM:"))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|kilobytes| kilobytes.parse::<f64>().ok())
        })
        .map(|kilobytes| kilobytes / 1024.0)
}

/// A finished child process: its output, wall time and the highest peak memory seen.
pub struct Timed {
    pub output: Output,
    pub seconds: f64,
    pub peak_mb: f64,
}

/// Runs `command`, sampling its peak memory every 10 ms until it exits.
pub fn run_timed(command: &mut Command) -> Timed {
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the measured program");
    let pid = child.id().to_string();
    // Drain the pipes on threads so a chatty child never blocks on a full pipe.
    let stdout = child.stdout.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = std::io::Read::read_to_end(&mut pipe, &mut bytes);
            bytes
        })
    });
    let stderr = child.stderr.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = std::io::Read::read_to_end(&mut pipe, &mut bytes);
            bytes
        })
    });
    let mut peak_mb: f64 = 0.0;
    let status = loop {
        if let Some(mb) = peak_rss_mb(&pid) {
            peak_mb = peak_mb.max(mb);
        }
        if let Some(status) = child.try_wait().expect("wait for the measured program") {
            break status;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let seconds = started.elapsed().as_secs_f64();
    let output = Output {
        status,
        stdout: stdout
            .map(|thread| thread.join().unwrap_or_default())
            .unwrap_or_default(),
        stderr: stderr
            .map(|thread| thread.join().unwrap_or_default())
            .unwrap_or_default(),
    };
    Timed {
        output,
        seconds,
        peak_mb,
    }
}
