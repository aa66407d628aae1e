//! One open cache and everything shown about it.

use std::path::PathBuf;
use std::sync::mpsc::SyncSender;

use crate::model::ChangeId;
use crate::store::{Facets, TableSummary, TimeSpan};

use super::super::Message;
use super::super::detail::DetailState;
use super::super::export::ExportDialog;
use super::super::filters::FilterForm;
use super::super::histogram::{BUCKETS, Histogram};
use super::super::restore::RestoreDialog;
use super::super::time_text::Zone;
use super::super::timeline::Timeline;
use super::super::views::Views;
use super::super::worker::{Request, Workers};
use crate::store::SourceIdentity;

/// One open cache and everything shown about it.
pub(super) struct Session {
    pub path: PathBuf,
    pub source: Option<SourceIdentity>,
    /// The import that fed the cache (`rowtrail import`), when an import did.
    pub import: Option<crate::store::ImportState>,
    /// The newest prune: the history in the cache begins there.
    pub pruned: Option<crate::store::maintenance::PruneEntry>,
    pub workers: Workers,
    pub tables: Vec<TableSummary>,
    pub context_fields: Vec<String>,
    pub span: Option<TimeSpan>,
    pub newest: Option<ChangeId>,
    pub form: FilterForm,
    pub filter_problem: Option<String>,
    /// The filter before the one applied last, to go back to when that one cannot run.
    pub previous_filter: crate::store::LogFilter,
    pub timeline: Timeline,
    pub histogram: Histogram,
    /// The facets of the current filter, with the generation they were counted for.
    pub facets: Option<(u64, Facets)>,
    pub detail: DetailState,
    pub restore: Option<RestoreDialog>,
    pub export: Option<ExportDialog>,
    pub views: Views,
    /// egui time of the last overview refresh while capture runs.
    pub refreshed_at: f64,
    /// egui time of the last facet count while capture runs.
    pub faceted_at: f64,
}

impl Session {
    pub fn start(
        path: PathBuf,
        inbox: SyncSender<Message>,
        ctx: &egui::Context,
    ) -> std::io::Result<Self> {
        let workers = Workers::start(path.clone(), inbox, ctx.clone())?;
        let timeline = Timeline::new(Default::default(), 1);
        workers.send(Request::Overview);
        workers.send(Request::Views);
        workers.send(Request::BuildIndex {
            generation: 1,
            filter: Default::default(),
        });
        workers.send(Request::Facets {
            generation: 1,
            filter: Default::default(),
        });
        Ok(Self {
            path,
            source: None,
            import: None,
            pruned: None,
            workers,
            tables: Vec::new(),
            context_fields: Vec::new(),
            span: None,
            newest: None,
            form: FilterForm::default(),
            filter_problem: None,
            previous_filter: Default::default(),
            timeline,
            histogram: Histogram::default(),
            facets: None,
            detail: DetailState::default(),
            restore: None,
            export: None,
            views: Views::default(),
            refreshed_at: 0.0,
            faceted_at: 0.0,
        })
    }

    /// Counts changes over time for the current filter, over the range the histogram shows.
    pub fn request_histogram(&mut self) {
        if let Some(span) = self.histogram.view(self.span) {
            self.histogram.generation = self.timeline.generation;
            self.workers.send(Request::Histogram {
                generation: self.timeline.generation,
                filter: self.timeline.filter.clone(),
                span,
                buckets: BUCKETS,
            });
        }
    }

    /// Counts the facets of the current filter.
    pub fn request_facets(&mut self) {
        self.workers.send(Request::Facets {
            generation: self.timeline.generation,
            filter: self.timeline.filter.clone(),
        });
    }

    /// The filter applied last cannot run: say why (under the filters) and show the previous
    /// filter's changes again; the form keeps what was typed, to be fixed.
    pub fn reject_filter(&mut self, message: String) {
        self.filter_problem = Some(message);
        let filter = std::mem::take(&mut self.previous_filter);
        let generation = self.timeline.generation + 1;
        self.timeline = self.timeline.refiltered(filter.clone(), generation);
        self.previous_filter = filter.clone();
        self.workers
            .send(Request::BuildIndex { generation, filter });
        self.request_histogram();
        self.request_facets();
    }

    /// Makes the form's filter the timeline's: a new index, histogram and facets.
    pub fn apply_filter(&mut self, zone: Zone) {
        match self.form.to_filter(zone) {
            Ok(filter) => {
                self.filter_problem = None;
                if filter.since.is_none() && filter.until.is_none() {
                    self.histogram.zooms.clear();
                }
                let generation = self.timeline.generation + 1;
                self.previous_filter = self.timeline.filter.clone();
                self.timeline = self.timeline.refiltered(filter.clone(), generation);
                self.workers
                    .send(Request::BuildIndex { generation, filter });
                self.request_histogram();
                self.request_facets();
            }
            Err(problem) => self.filter_problem = Some(problem),
        }
    }

    /// Sends what the timeline queued for the readers.
    pub fn send_requests(&mut self) {
        for request in self.timeline.take_requests() {
            self.workers.send(request);
        }
    }
}
