//! A smoke test of the real window: the app binary (the release build in CI, through
//! `ROWTRAIL_BIN`) opens a cache under Xvfb, and a screenshot shows a window that is not blank.
//! `ROWTRAIL_SCREENSHOT=path` keeps the screenshot (README's picture is made this way).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on unexpected values.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use support::{fresh_db, wait_until};

/// An X server of our own on a free display number; stopped when dropped.
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    fn start() -> Self {
        for number in 90..130 {
            if Path::new(&format!("/tmp/.X11-unix/X{number}")).exists() {
                continue;
            }
            let display = format!(":{number}");
            // Owned at once, so that Drop stops it whatever happens next.
            let server = Self {
                child: Command::new("Xvfb")
                    .args([&display, "-screen", "0", "1440x900x24", "-nolisten", "tcp"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("Xvfb is needed for this test: apt-get install xvfb xauth mesa-vulkan-drivers imagemagick"),
                display,
            };
            if wait_until(Duration::from_secs(10), || {
                Path::new(&format!("/tmp/.X11-unix/X{number}")).exists()
            }) {
                return server;
            }
        }
        panic!("no free X display between :90 and :129");
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How much of the picture differs from its most common colour, and how many colours it has.
fn busyness(path: &Path) -> (f64, usize) {
    let image = image::open(path).unwrap().to_rgb8();
    let mut counts = std::collections::HashMap::new();
    for pixel in image.pixels() {
        *counts.entry(pixel.0).or_insert(0usize) += 1;
    }
    let most = counts.values().copied().max().unwrap_or(0);
    let total = (image.width() * image.height()) as usize;
    (1.0 - most as f64 / total as f64, counts.len())
}

#[test]
fn the_window_opens_a_cache_and_is_not_blank() {
    let db = fresh_db("window");
    db.sql(
        "CREATE TABLE orders (id int PRIMARY KEY, status text, total numeric);
         INSERT INTO orders SELECT g, 'new', g * 1.5 FROM generate_series(1, 40) g;",
    );
    db.capture_ok(&[]);
    db.sql("UPDATE orders SET status = 'paid' WHERE id % 3 = 0; DELETE FROM orders WHERE id = 40;");
    db.capture_ok(&[]);

    let binary = std::env::var_os("ROWTRAIL_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_rowtrail")),
        PathBuf::from,
    );
    let xvfb = Xvfb::start();
    let home = tempfile::tempdir().unwrap();
    let mut app = Command::new(&binary)
        .args(["open"])
        .arg(db.cache())
        .env("DISPLAY", &xvfb.display)
        .env("HOME", home.path())
        .env("XDG_RUNTIME_DIR", home.path())
        .env_remove("WAYLAND_DISPLAY")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let shot = home.path().join("window.png");
    let shows_the_app = wait_until(Duration::from_secs(60), || {
        let taken = Command::new("import")
            .args(["-display", &xvfb.display, "-window", "root"])
            .arg(&shot)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        taken && busyness(&shot).0 > 0.05
    });
    let exited = app.try_wait().unwrap();
    let _ = app.kill();
    let _ = app.wait();
    assert!(exited.is_none(), "the app exited early: {exited:?}");
    assert!(
        shows_the_app,
        "the screen stayed blank: {:?}",
        busyness(&shot)
    );
    let (busy, colours) = busyness(&shot);
    assert!(colours > 50, "only {colours} colours: no text on screen?");
    if let Some(keep) = std::env::var_os("ROWTRAIL_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
    eprintln!(
        "{} shows the window: {busy:.2} of the screen drawn, {colours} colours",
        binary.display()
    );
}
