//! What reaches the app between frames: replies from the cache readers, capture events, and the
//! results of background tasks.

use crate::capture::CaptureEvent;

use super::super::Message;
use super::super::audit_import::summary_line;
use super::super::capture_task::CaptureTask;
use super::super::connect::default_cache_path;
use super::super::restore::ScriptState;
use super::super::status::CaptureState;
use super::super::worker::{Reply, Request};
use super::{Command, RowtrailApp};

/// Seconds between refreshes of the table list, and of the open change's record, while capture
/// stores changes.
const REFRESH_SECONDS: f64 = 1.0;
/// Seconds between facet counts while capture stores changes (they scan many rows).
const FACETS_SECONDS: f64 = 10.0;

impl RowtrailApp {
    /// Handles everything that arrived since the last frame.
    pub(super) fn drain_inbox(&mut self, now: f64) {
        let events = self
            .capture
            .as_ref()
            .map(CaptureTask::events)
            .unwrap_or_default();
        for event in events {
            self.on_capture(&event, now);
        }
        while let Ok(message) = self.inbox.try_recv() {
            match message {
                Message::Reply(Reply::Grew { path, newest }) => self.on_grew(&path, newest, now),
                Message::Reply(reply) => self.on_reply(reply),
                Message::CaptureEnded(result) => {
                    self.capture = None;
                    self.status.history_gap =
                        result.as_ref().is_err_and(|failure| failure.history_gap);
                    self.status.state = CaptureState::Stopped {
                        error: result.err().map(|failure| failure.message),
                    };
                }
                Message::BackgroundFailed(reason) => self.banner = Some(reason),
                Message::CheckedStores { url, stores } => {
                    if let Some(dialog) = self.connect.as_mut()
                        && dialog.url == url
                    {
                        dialog.take_stores(stores);
                    }
                }
                Message::Doctor { report, database } => {
                    if let Some(dialog) = self.connect.as_mut() {
                        // A source that passed its checks gets a cache path to suggest.
                        if report.is_ok()
                            && dialog.cache.is_empty()
                            && let Some(database) = database
                        {
                            dialog.cache = default_cache_path(&database).display().to_string();
                        }
                        dialog.take_report(report);
                    }
                }
                Message::ScriptSaved(result) => {
                    if let Some(dialog) = self
                        .session
                        .as_mut()
                        .and_then(|session| session.restore.as_mut())
                    {
                        dialog.notice = Some(match result {
                            Ok(notice) | Err(notice) => notice,
                        });
                    }
                }
                Message::DemoReady(result) => {
                    self.demo_starting = false;
                    match result {
                        Ok(demo) => self.adopt_demo(*demo),
                        Err(error) => {
                            self.banner = Some(format!("the demo did not start: {error}"))
                        }
                    }
                }
                Message::ScriptRan(result) => {
                    if let Some(dialog) = self
                        .session
                        .as_mut()
                        .and_then(|session| session.restore.as_mut())
                    {
                        dialog.run.running = false;
                        dialog.run.outcome =
                            Some(result.map(|()| "The script ran and committed.".to_owned()));
                    }
                }
                Message::LinkCache(Some(path)) => self.commands.push(Command::OpenCache(path)),
                Message::LinkCache(None) => {
                    if let Some((view, source)) = self.pending_view.take() {
                        self.banner = Some(format!(
                            "The view '{}' is for database {} of the server with system id {}, and no recent cache holds its history: open one with rowtrail open CACHE 'LINK'",
                            view.name, source.database, source.system_identifier
                        ));
                    }
                }
                Message::AuditFound {
                    found,
                    database,
                    shared,
                } => {
                    if let Some(dialog) = self.audit.as_mut() {
                        dialog.shared = shared;
                        dialog.take_found(found, database);
                    }
                }
                Message::Imported {
                    cache,
                    from,
                    login: (url, password),
                    result,
                } => {
                    self.importing = false;
                    self.imported(cache, from, (url, password), result);
                }
                Message::PickedNew(path) => {
                    self.browsing = false;
                    if let Some(path) = path {
                        let path = path.display().to_string();
                        if let Some(dialog) = self.audit.as_mut() {
                            dialog.cache = path;
                            dialog.cache_suggested = false;
                        } else if let Some(dialog) = self.connect.as_mut() {
                            dialog.cache = path;
                        }
                    }
                }
                Message::Picked(path) => {
                    self.browsing = false;
                    if let Some(path) = path {
                        self.commands.push(Command::OpenCache(path));
                    }
                }
            }
        }
    }

    /// An import started here ended: the cache opens with a notice, or the error is shown.
    fn imported(
        &mut self,
        cache: std::path::PathBuf,
        from: String,
        (url, password): (String, crate::capture::conninfo::Password),
        result: Result<crate::import::ImportSummary, String>,
    ) {
        match result {
            Ok(summary) => {
                self.audit = None;
                // The store sits in the source database: *Run on source* goes there.
                self.source_login = Some(super::SourceLogin {
                    url,
                    password,
                    cache: cache.clone(),
                });
                self.notice = Some(summary_line(&summary, &from));
                self.commands.push(Command::OpenCache(cache));
            }
            Err(error) => match self.audit.as_mut() {
                Some(dialog) => {
                    dialog.importing = false;
                    dialog.error = Some(error);
                }
                None => {
                    // (An *Import new rows* that failed: its "Importing…" notice goes.)
                    self.notice = None;
                    self.banner = Some(error);
                }
            },
        }
    }

    fn on_reply(&mut self, reply: Reply) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let generation = session.timeline.generation;
        match reply {
            Reply::Opened {
                path,
                source,
                newest,
                import,
                rules,
                pruned,
            } => {
                session.import = import;
                session.pruned = pruned;
                session.detail.rules = rules;
                if session.source.is_none() {
                    self.settings.remember(&path);
                    let name = path.file_name().map_or_else(
                        || path.display().to_string(),
                        |name| name.to_string_lossy().into_owned(),
                    );
                    self.ctx
                        .send_viewport_cmd(egui::ViewportCommand::Title(format!(
                            "rowtrail — {name}"
                        )));
                }
                if let Some((view, wanted)) = self.pending_view.take() {
                    let known = crate::model::LinkSource {
                        system_identifier: source.system_identifier.clone(),
                        database: source.database.clone(),
                    };
                    if known == wanted {
                        session.workers.send(Request::View(view.clone()));
                        session.views.open = Some(super::super::views::OpenView {
                            view,
                            rows: None,
                            copied: false,
                        });
                    } else {
                        self.banner = Some(format!(
                            "The view '{}' is for database {} of the server with system id {}; this cache holds the history of {}: open a cache of that database",
                            view.name, wanted.database, wanted.system_identifier, source.display
                        ));
                    }
                }
                session.source = Some(source);
                session.newest = session.newest.max(newest);
            }
            Reply::Views { views, source } => {
                session.views.saved = views;
                session.views.source = Some(source);
            }
            Reply::ViewSaved(Ok(view)) => {
                session.views.form = None;
                session.workers.send(Request::Views);
                session.workers.send(Request::View(view.clone()));
                session.views.open = Some(super::super::views::OpenView {
                    view,
                    rows: None,
                    copied: false,
                });
            }
            Reply::ViewSaved(Err(problem)) => {
                if let Some(form) = session.views.form.as_mut() {
                    form.saving = false;
                    form.problem = Some(problem);
                }
            }
            Reply::View { view, rows } => {
                if let Some(open) = session.views.open.as_mut()
                    && open.view == view
                {
                    open.rows = Some(rows);
                }
            }
            Reply::Overview {
                tables,
                context_fields,
                span,
                newest,
            } => {
                let span_changed = span != session.span;
                session.tables = tables;
                session.context_fields = context_fields;
                session.span = span;
                session.newest = newest;
                if span_changed || session.histogram.generation != generation {
                    session.request_histogram();
                }
            }
            Reply::Rows {
                generation: of,
                slot,
                rows,
            } if of == generation => {
                session.timeline.apply_rows(slot, &rows);
            }
            Reply::Head {
                generation: of,
                ids,
            } if of == generation => {
                if session.timeline.apply_head(ids) {
                    self.commands.push(Command::ApplyFilter);
                }
                // Changes stored while the head was being read: read it again.
                session.timeline.refresh_head_if_wanted();
            }
            Reply::Index {
                generation: of,
                top,
                first_anchor,
                anchors,
                scanned,
                complete,
            } if of == generation => {
                session
                    .timeline
                    .apply_index(top, first_anchor, anchors, scanned, complete);
                session.timeline.refresh_head_if_wanted();
            }
            Reply::Histogram {
                generation: of,
                span,
                counts,
            } if of == generation => {
                session.histogram.span = Some(span);
                session.histogram.counts = counts;
            }
            Reply::Fold {
                generation: of,
                tx_id,
                newest,
                count,
                index_rank,
            } if of == generation => {
                session
                    .timeline
                    .apply_fold(tx_id, newest, count, index_rank);
            }
            Reply::Facets {
                generation: of,
                facets,
            } if of == generation => session.facets = Some((of, facets)),
            Reply::Located(id) => session.timeline.jump_to(id),
            Reply::Detail(detail) => {
                if session.detail.loading == Some(detail.change.id)
                    || session.detail.loading.is_none()
                {
                    session.detail.show(detail);
                }
            }
            Reply::Exported(result) => {
                if let Some(dialog) = session.export.as_mut() {
                    dialog.busy = false;
                    dialog.outcome = Some(result);
                }
            }
            Reply::OpenChange(id) => {
                session.timeline.open(id);
                session.detail.loading = Some(id);
                session.workers.send(Request::Detail(id));
            }
            Reply::Related { change, story } => {
                if session.detail.related_asked == Some(change) {
                    session.detail.related_asked = None;
                    session.detail.related = Some((change, story));
                }
            }
            Reply::RecordAt {
                change,
                moment,
                image,
            } => {
                if session.detail.state_at_asked(change, moment) {
                    session.detail.state_at.result = Some((moment, image));
                }
            }
            Reply::RelatedAt {
                change,
                moment,
                members,
            } => {
                if session.detail.state_at_asked(change, moment) {
                    session.detail.state_at.related = Some((moment, members));
                }
            }
            Reply::Script(result) => {
                if let Some(dialog) = session.restore.as_mut() {
                    dialog.script = match result {
                        Ok(script) => ScriptState::Ready(Box::new(script)),
                        Err(error) => ScriptState::Failed(error),
                    };
                }
            }
            Reply::FilterRejected {
                generation: of,
                message,
            } => {
                if of == generation {
                    session.reject_filter(message);
                }
            }
            Reply::Grew { .. } => {}
            Reply::Failed(error) => {
                if session.source.is_none() {
                    self.session = None;
                }
                self.banner = Some(error);
            }
            Reply::Rows { .. }
            | Reply::Head { .. }
            | Reply::Index { .. }
            | Reply::Histogram { .. }
            | Reply::Fold { .. }
            | Reply::Facets { .. } => {}
        }
    }

    fn on_capture(&mut self, event: &CaptureEvent, now: f64) {
        let stored_more = self.status.apply(event, now);
        let cache_exists = matches!(
            event,
            CaptureEvent::PublicationCreated { .. }
                | CaptureEvent::PublicationReused { .. }
                | CaptureEvent::SlotCreated { .. }
                | CaptureEvent::Streaming { .. }
        );
        if cache_exists && let Some(path) = self.capturing_into.take() {
            self.apply(Command::OpenCache(path));
        }
        if stored_more {
            self.on_stored_more(now);
        }
    }

    /// The watcher of the cache at `path` saw its newest change id move. While this app captures
    /// into the open cache, capture's own events refresh the screen; otherwise another process
    /// stored changes (a capture in a terminal, a publisher into the shared store) and the screen
    /// takes them in the same way.
    fn on_grew(&mut self, path: &std::path::Path, newest: crate::model::ChangeId, now: f64) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        let capturing_here = self.capture.is_some()
            && self
                .last_capture
                .as_ref()
                .is_some_and(|last| last.cache == session.path);
        // A report of a cache closed since is dropped.
        if capturing_here || session.path != path {
            return;
        }
        session.newest = session.newest.max(Some(newest));
        // The first report is usually the newest change the timeline read on opening.
        if session.timeline.has_read(newest) {
            return;
        }
        if !session.timeline.is_indexed() {
            // Read once the index is in: nothing else is worth reading again yet.
            session.timeline.refresh_head();
            return;
        }
        self.on_stored_more(now);
    }

    /// New changes are in the cache: the timeline's head is read again, and (a few times a
    /// second at most) the table list, the open view and the open record; facets more rarely.
    fn on_stored_more(&mut self, now: f64) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        session.timeline.refresh_head();
        if now - session.refreshed_at > REFRESH_SECONDS {
            session.refreshed_at = now;
            session.workers.send(Request::Overview);
            // An open view follows new changes too, once its last reading is in.
            if let Some(open) = &session.views.open
                && open.rows.is_some()
            {
                session.workers.send(Request::View(open.view.clone()));
            }
            // The open change's record may have new versions: read it again (the panel keeps
            // its tab and the state-at control).
            if let Some(detail) = &session.detail.detail
                && session.detail.loading.is_none()
            {
                session.workers.send(Request::Detail(detail.change.id));
            }
        }
        if now - session.faceted_at > FACETS_SECONDS {
            session.faceted_at = now;
            session.request_facets();
        }
    }
}
