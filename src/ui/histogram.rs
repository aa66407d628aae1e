//! Changes over time above the timeline: drag to zoom into a time range (which also filters the
//! timeline), Zoom out to go back, click to jump to a moment.
//!
//! Drawn by hand rather than with egui_plot: it needs a brush selection that becomes a filter and
//! a click that becomes a jump, and nothing else a plot offers.

use chrono::{DateTime, Utc};
use egui::{Align2, FontId, Pos2, Rect, Role, Sense, Stroke, Vec2, WidgetInfo};

use crate::store::TimeSpan;

use super::filters::changes_text;
use super::time_text::{Zone, clock};

/// Counts per equal slice of a time span, for the current filter.
#[derive(Debug, Default)]
pub struct Histogram {
    pub generation: u64,
    pub span: Option<TimeSpan>,
    pub counts: Vec<u64>,
    drag_from: Option<f32>,
    /// The ranges zoomed into, innermost last; none: the whole history.
    pub zooms: Vec<TimeSpan>,
}

/// What the user did with the histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistogramAction {
    /// A range was dragged: the histogram zoomed into it.
    SelectRange(DateTime<Utc>, DateTime<Utc>),
    JumpTo(DateTime<Utc>),
    /// Back to the range zoomed into before (or the whole history).
    ZoomOut,
}

/// How many bars to ask for.
pub const BUCKETS: usize = 120;

impl Histogram {
    /// The span to count over: the innermost zoom, or the whole history.
    pub fn view(&self, whole: Option<TimeSpan>) -> Option<TimeSpan> {
        self.zooms.last().copied().or(whole)
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, zone: Zone) -> Option<HistogramAction> {
        let (rect, response) = ui.allocate_exact_size(
            Vec2::new(ui.available_width(), 72.0),
            Sense::click_and_drag(),
        );
        response.widget_info(|| WidgetInfo::labeled(Role::Figure, true, "Changes over time"));
        let visuals = ui.visuals().clone();
        let painter = ui.painter_at(rect);
        painter.rect_filled(rect, 4.0, visuals.extreme_bg_color);
        let Some((from, to)) = self.span else {
            painter.text(
                rect.center(),
                Align2::CENTER_CENTER,
                "No changes yet",
                FontId::proportional(12.0),
                visuals.weak_text_color(),
            );
            return None;
        };
        let plot = Rect::from_min_max(
            rect.min + Vec2::new(4.0, 4.0),
            rect.max - Vec2::new(4.0, 16.0),
        );
        let peak = self.counts.iter().copied().max().unwrap_or(0).max(1) as f32;
        let bar_width = plot.width() / self.counts.len().max(1) as f32;
        for (index, count) in self.counts.iter().enumerate() {
            if *count == 0 {
                continue;
            }
            let height = (plot.height() * (*count as f32 / peak).sqrt()).max(1.0);
            let x = plot.min.x + index as f32 * bar_width;
            let bar = Rect::from_min_max(
                Pos2::new(x, plot.max.y - height),
                Pos2::new(x + (bar_width - 1.0).max(1.0), plot.max.y),
            );
            painter.rect_filled(bar, 0.0, visuals.selection.bg_fill);
        }
        let small = FontId::proportional(11.0);
        painter.text(
            Pos2::new(plot.min.x, rect.max.y - 2.0),
            Align2::LEFT_BOTTOM,
            clock(from, zone),
            small.clone(),
            visuals.weak_text_color(),
        );
        painter.text(
            Pos2::new(plot.max.x, rect.max.y - 2.0),
            Align2::RIGHT_BOTTOM,
            clock(to, zone),
            small,
            visuals.weak_text_color(),
        );

        let time_at = |x: f32| {
            let fraction = f64::from(((x - plot.min.x) / plot.width()).clamp(0.0, 1.0));
            let micros = from.timestamp_micros() as f64
                + fraction * (to - from).num_microseconds().unwrap_or(0) as f64;
            DateTime::from_timestamp_micros(micros as i64).unwrap_or(from)
        };
        if let Some(pointer) = response.hover_pos() {
            let index = (((pointer.x - plot.min.x) / bar_width) as usize)
                .min(self.counts.len().saturating_sub(1));
            let count = self.counts.get(index).copied().unwrap_or(0);
            response.clone().on_hover_text(format!(
                "{}: {}",
                clock(time_at(pointer.x), zone),
                changes_text(count)
            ));
        }
        if response.drag_started() {
            self.drag_from = response.interact_pointer_pos().map(|pos| pos.x);
        }
        if let (Some(start), Some(pointer)) = (self.drag_from, response.interact_pointer_pos()) {
            let selection =
                Rect::from_x_y_ranges(start.min(pointer.x)..=start.max(pointer.x), plot.y_range());
            painter.rect(
                selection,
                0.0,
                visuals.selection.bg_fill.gamma_multiply(0.3),
                Stroke::new(1.0, visuals.selection.stroke.color),
                egui::StrokeKind::Inside,
            );
        }
        if response.drag_stopped()
            && let (Some(start), Some(end)) = (
                self.drag_from.take(),
                response.interact_pointer_pos().map(|pos| pos.x),
            )
        {
            if (end - start).abs() >= 4.0 {
                let (low, high) = (time_at(start.min(end)), time_at(start.max(end)));
                self.zooms.push((low, high));
                return Some(HistogramAction::SelectRange(low, high));
            }
            return Some(HistogramAction::JumpTo(time_at(end)));
        }
        if !self.zooms.is_empty() {
            let button = Rect::from_min_size(
                Pos2::new(rect.max.x - 90.0, rect.min.y + 4.0),
                Vec2::new(84.0, 20.0),
            );
            if ui
                .place(button, egui::Button::new("Zoom out").small())
                .on_hover_text("Back to the range before this one")
                .clicked()
            {
                self.zooms.pop();
                return Some(HistogramAction::ZoomOut);
            }
        }
        if response.clicked()
            && let Some(pointer) = response.interact_pointer_pos()
        {
            return Some(HistogramAction::JumpTo(time_at(pointer.x)));
        }
        None
    }
}
