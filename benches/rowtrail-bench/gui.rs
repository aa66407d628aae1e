//! GUI frames, headless: the real app on an egui context without a window, fed scrolling and
//! scrollbar jumps, timing the UI thread's work for each frame (layout and tessellation).

use std::path::Path;
use std::time::{Duration, Instant};

use egui::{Event, Modifiers, MouseWheelUnit, PointerButton, Pos2, RawInput, Rect, Vec2};
use rowtrail::ui::{AppOptions, LIST_RECT, RowtrailApp};
use serde::{Deserialize, Serialize};

use crate::stats::{millis, peak_rss_mb, percentile};

/// What one GUI run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GuiFigures {
    pub rows: u64,
    pub first_frame_ms: f64,
    pub first_rows_ms: f64,
    pub index_ms: f64,
    pub scroll_p50_ms: f64,
    pub scroll_p99_ms: f64,
    pub jump_p50_ms: f64,
    pub jump_p99_ms: f64,
    pub rows_after_jump_p50_ms: f64,
    pub rows_after_jump_p99_ms: f64,
    pub peak_rss_mb: f64,
}

struct Driver {
    ctx: egui::Context,
    app: RowtrailApp,
    started: Instant,
}

impl Driver {
    /// Runs one frame with `events`; returns the UI thread's time for it.
    fn frame(&mut self, events: Vec<Event>) -> Duration {
        let input = RawInput {
            screen_rect: Some(Rect::from_min_size(Pos2::ZERO, Vec2::new(1280.0, 800.0))),
            time: Some(self.started.elapsed().as_secs_f64()),
            events,
            ..RawInput::default()
        };
        let began = Instant::now();
        let app = &mut self.app;
        let output = self.ctx.run_ui(input, |ui| app.frame(ui));
        let _meshes = self.ctx.tessellate(output.shapes, output.pixels_per_point);
        began.elapsed()
    }

    /// Frames at about 60 per second until `done`, or `limit` passes.
    fn until(&mut self, limit: Duration, done: impl Fn(&RowtrailApp) -> bool) -> bool {
        let started = Instant::now();
        while started.elapsed() < limit {
            let spent = self.frame(Vec::new());
            if done(&self.app) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(16).saturating_sub(spent));
        }
        false
    }

    fn list(&self) -> Rect {
        self.ctx
            .data(|data| data.get_temp::<Rect>(egui::Id::unique(LIST_RECT)))
            .unwrap_or(Rect::from_min_size(
                Pos2::new(300.0, 150.0),
                Vec2::new(400.0, 500.0),
            ))
    }
}

/// Opens `cache` in the app and measures; `frames` scales the scroll and jump phases.
pub fn measure(cache: &Path, frames: usize) -> GuiFigures {
    let started = Instant::now();
    let ctx = egui::Context::default();
    let app = RowtrailApp::fresh(
        ctx.clone(),
        AppOptions {
            cache: Some(cache.to_owned()),
            ..AppOptions::default()
        },
    );
    let mut driver = Driver { ctx, app, started };
    driver.frame(Vec::new());
    let first_frame_ms = millis(started.elapsed());
    driver.until(Duration::from_secs(60), |app| {
        app.timeline_progress().is_some_and(|(_, _, loaded)| loaded)
    });
    let first_rows_ms = millis(started.elapsed());
    driver.until(Duration::from_secs(600), |app| {
        app.timeline_progress()
            .is_some_and(|(_, complete, _)| complete)
    });
    let index_ms = millis(started.elapsed());
    let rows = driver
        .app
        .timeline_progress()
        .map_or(0, |(rows, _, _)| rows);

    let list = driver.list();
    let mut scroll = Vec::new();
    for index in 0..frames {
        let pointer = Pos2::new(list.center().x, list.center().y);
        let delta = if index % 50 == 49 { -4000.0 } else { -120.0 };
        let events = vec![
            Event::PointerMoved(pointer),
            Event::MouseWheel {
                unit: MouseWheelUnit::Point,
                delta: Vec2::new(0.0, delta),
                phase: egui::TouchPhase::Move,
                modifiers: Modifiers::NONE,
                source: egui::MouseWheelSource::Wheel,
            },
        ];
        let spent = driver.frame(events);
        scroll.push(millis(spent));
        std::thread::sleep(Duration::from_millis(16).saturating_sub(spent));
    }

    let mut jumps = Vec::new();
    let mut rows_after_jump = Vec::new();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..frames / 4 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let track = Pos2::new(
            list.max.x - 6.0,
            list.min.y + 30.0 + (state % 1000) as f32 / 1000.0 * (list.height() - 40.0),
        );
        let press = vec![
            Event::PointerMoved(track),
            Event::PointerButton {
                pos: track,
                button: PointerButton::Primary,
                pressed: true,
                modifiers: Modifiers::NONE,
            },
        ];
        let release = vec![Event::PointerButton {
            pos: track,
            button: PointerButton::Primary,
            pressed: false,
            modifiers: Modifiers::NONE,
        }];
        let jumped = Instant::now();
        jumps.push(millis(driver.frame(press)));
        jumps.push(millis(driver.frame(release)));
        let loaded = driver.until(Duration::from_secs(10), |app| {
            app.timeline_progress().is_some_and(|(_, _, loaded)| loaded)
        });
        if loaded {
            rows_after_jump.push(millis(jumped.elapsed()));
        }
    }
    GuiFigures {
        rows,
        first_frame_ms,
        first_rows_ms,
        index_ms,
        scroll_p50_ms: percentile(&scroll, 0.5),
        scroll_p99_ms: percentile(&scroll, 0.99),
        jump_p50_ms: percentile(&jumps, 0.5),
        jump_p99_ms: percentile(&jumps, 0.99),
        rows_after_jump_p50_ms: percentile(&rows_after_jump, 0.5),
        rows_after_jump_p99_ms: percentile(&rows_after_jump, 0.99),
        peak_rss_mb: peak_rss_mb("self").unwrap_or(0.0),
    }
}
