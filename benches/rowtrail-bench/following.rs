//! The app's CPU in a real window under Xvfb: following a live capture (the demo, with a load of
//! about ten changes a second added to its shop), and at rest on a static cache. CPU time is read
//! per thread from /proc, so the software rasterizer of a machine without a GPU (Mesa's llvmpipe
//! threads, which a GPU would relieve) is told apart from the app's own threads.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rowtrail::model::Op;
use rowtrail::store::Cache;

/// What one window measured: shares of one core over the measured span.
#[derive(Debug, Clone, Default)]
pub struct WindowCpu {
    pub seconds: f64,
    pub app: f64,
    pub rasterizer: f64,
    /// The busiest of the app's own threads, by name.
    pub busiest: Vec<(String, f64)>,
}

impl WindowCpu {
    pub fn total(&self) -> f64 {
        self.app + self.rasterizer
    }
}

#[derive(Debug, Clone, Default)]
pub struct FollowingFigures {
    pub following: WindowCpu,
    pub changes_per_second: f64,
    pub at_rest: WindowCpu,
}

/// Why the part cannot run here, if it cannot.
pub fn unavailable() -> Option<String> {
    let found = Command::new("Xvfb")
        .arg("-help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    (!found)
        .then(|| "Xvfb is not installed (apt-get install xvfb xauth mesa-vulkan-drivers)".into())
}

struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    fn start() -> Self {
        let number = (90..200)
            .find(|n| !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists())
            .expect("a free X display");
        let display = format!(":{number}");
        let child = Command::new("Xvfb")
            .args([
                display.as_str(),
                "-screen",
                "0",
                "1600x1000x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start Xvfb");
        let socket = format!("/tmp/.X11-unix/X{number}");
        let started = Instant::now();
        while !Path::new(&socket).exists() && started.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, display }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU ticks per thread name of a process.
fn thread_ticks(pid: u32) -> Vec<(String, u64)> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out: Vec<(String, u64)> = Vec::new();
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_owned();
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let ticks = fields[11].parse::<u64>().unwrap_or(0) + fields[12].parse::<u64>().unwrap_or(0);
        match out.iter_mut().find(|(known, _)| *known == name) {
            Some((_, total)) => *total += ticks,
            None => out.push((name, ticks)),
        }
    }
    out
}

/// The CPU a process uses over `span`, per group of threads.
fn measure_cpu(pid: u32, span: Duration) -> WindowCpu {
    let before = thread_ticks(pid);
    let started = Instant::now();
    std::thread::sleep(span);
    let after = thread_ticks(pid);
    let seconds = started.elapsed().as_secs_f64();
    // The kernel's clock ticks per second: 100 on every Linux this runs on.
    let tick = 0.01;
    let mut cpu = WindowCpu {
        seconds,
        ..WindowCpu::default()
    };
    for (name, ticks) in after {
        let earlier = before
            .iter()
            .find(|(known, _)| *known == name)
            .map_or(0, |(_, ticks)| *ticks);
        let share = ticks.saturating_sub(earlier) as f64 * tick / seconds;
        if name.starts_with("llvmpipe") {
            cpu.rasterizer += share;
        } else {
            cpu.app += share;
            cpu.busiest.push((name, share));
        }
    }
    cpu.busiest.sort_by(|a, b| b.1.total_cmp(&a.1));
    cpu.busiest.truncate(3);
    cpu
}

fn stored_changes(cache: &Path) -> u64 {
    Cache::open(cache)
        .and_then(|cache| cache.counts())
        .map(|counts| {
            counts
                .into_iter()
                .filter(|(_, op, _)| *op != Op::Snapshot)
                .map(|(_, _, count)| count as u64)
                .sum()
        })
        .unwrap_or(0)
}

fn app(display: &str, home: &Path, args: &[&str]) -> Child {
    let mut command = crate::server::rowtrail(args);
    command
        .env("DISPLAY", display)
        .env("HOME", home)
        .env_remove("WAYLAND_DISPLAY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command.spawn().expect("start rowtrail")
}

/// Reads the demo's standard error until it says how to reach its database and where its cache
/// is; the rest is drained on a thread.
fn demo_lines(child: &mut Child) -> (String, PathBuf) {
    let stderr = child.stderr.take().expect("the demo's standard error");
    let mut lines = BufReader::new(stderr).lines();
    let (mut psql, mut cache) = (None, None);
    let mut said = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap_or_default();
        said.push(line.clone());
        if let Some(command) = line.strip_prefix("Reach the demo database while it runs with: ") {
            psql = Some(command.to_owned());
        }
        if let Some(rest) = line.split("rowtrail open ").nth(1) {
            cache = Some(PathBuf::from(rest.trim_end_matches(").")));
        }
        if psql.is_some() && cache.is_some() {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    match (psql, cache) {
        (Some(psql), Some(cache)) => (psql, cache),
        _ => panic!("the demo did not say where it runs:\n{}", said.join("\n")),
    }
}

/// Runs the demo in a window, adds ten changes a second for `warmup + span`, measures over
/// `span`; then opens the demo's cache in a window of its own and measures it at rest.
pub fn measure(dir: &Path, warmup: Duration, span: Duration) -> FollowingFigures {
    let xvfb = Xvfb::start();
    let work = dir.join("following");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(work.join("home")).unwrap();
    let kept = work.join("demo");
    let mut demo = app(
        &xvfb.display,
        &work.join("home"),
        &["demo", "--keep", kept.to_str().unwrap()],
    );
    let (psql, cache) = demo_lines(&mut demo);
    let ticks = ((warmup + span).as_secs_f64() * 10.0) as u64 + 50;
    let load = std::fs::write(
        work.join("load.sql"),
        format!(
            "DO $$ BEGIN FOR i IN 1..{ticks} LOOP
               UPDATE products SET stock = stock + 1 WHERE id = 1 + i % 10;
               COMMIT;
               PERFORM pg_sleep(0.1);
             END LOOP; END $$;"
        ),
    );
    load.expect("write the load");
    let mut generator = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{psql} -X -q -f {}",
            work.join("load.sql").display()
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the load");
    std::thread::sleep(warmup);
    let before = stored_changes(&cache);
    let following = measure_cpu(demo.id(), span);
    let changes_per_second =
        stored_changes(&cache).saturating_sub(before) as f64 / following.seconds;
    let _ = generator.kill();
    let _ = generator.wait();
    let _ = demo.kill();
    let _ = demo.wait();
    // The demo's server is stopped by its watchdog once the demo is gone.
    std::thread::sleep(Duration::from_secs(2));

    let mut open = app(
        &xvfb.display,
        &work.join("home"),
        &["open", cache.to_str().unwrap()],
    );
    std::thread::sleep(Duration::from_secs(8));
    let at_rest = measure_cpu(open.id(), span.min(Duration::from_secs(20)));
    let _ = open.kill();
    let _ = open.wait();
    drop(xvfb);
    let _ = std::fs::remove_dir_all(&work);
    FollowingFigures {
        following,
        changes_per_second,
        at_rest,
    }
}
