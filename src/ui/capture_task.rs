//! Capture in the background: `capture::run` on a tokio runtime in a named thread. Its events go
//! to a small mailbox the UI drains each frame, never to a channel the runtime could block on:
//! progress reports replace the previous one of their kind instead of queueing up. Stopping
//! capture lets it finish the transaction at hand.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::watch;

use crate::capture::conninfo::{ConnectionSpec, Password, ProcessEnvironment};
use crate::capture::{self, CaptureError, CaptureEvent, CaptureOptions};
use crate::model::TableName;

use super::{CaptureFailure, Message};

/// What to capture: options ready to use, or a connection string still to resolve (which reads
/// `~/.pgpass`, so it happens on the capture thread, not the UI's).
#[derive(Debug, Clone)]
pub enum CaptureStart {
    Ready(Box<CaptureOptions>),
    Login {
        url: String,
        password: Password,
        tables: Option<Vec<TableName>>,
        cache: PathBuf,
        /// Column rules chosen in the connect dialog (none: the cache's own).
        rules: Vec<crate::model::ColumnRule>,
    },
}

impl CaptureStart {
    /// The options, resolving the connection string and preparing the cache's directory.
    pub fn into_options(self) -> Result<CaptureOptions, String> {
        let (url, password, tables, cache, rules) = match self {
            Self::Ready(options) => return Ok(*options),
            Self::Login {
                url,
                password,
                tables,
                cache,
                rules,
            } => (url, password, tables, cache, rules),
        };
        let protection = match rules.is_empty() {
            true => default_protection(),
            false => {
                let rules = crate::model::ColumnRules::new(rules);
                let (key, _) = crate::capture::mask_key::resolve(None, rules.needs_key())
                    .map_err(|error| error.to_string())?;
                crate::model::ColumnProtection { rules, key }
            }
        };
        let spec = resolve(&url, &password)?;
        if let Some(parent) = cache.parent() {
            crate::store::create_private_dir(parent).map_err(|error| {
                format!(
                    "could not create {}: {error}; choose a cache file in a folder you can write",
                    parent.display()
                )
            })?;
        }
        Ok(CaptureOptions {
            slot: capture::slot_for_database(&spec.dbname),
            source: spec,
            cache,
            tables,
            publication: "rowtrail".into(),
            once: false,
            new_baseline: false,
            stream_in_progress: true,
            protection,
            retain: None,
        })
    }
}

/// What the app captures and imports with: the cache's own column rules, and the mask key from
/// its default place when there is one (a cache whose rules hash columns needs it; without it the
/// capture stops with a message that says so).
pub fn default_protection() -> crate::model::ColumnProtection {
    let key = crate::capture::mask_key::default_path()
        .and_then(|path| crate::capture::mask_key::load(&path).ok().flatten());
    crate::model::ColumnProtection {
        rules: crate::model::ColumnRules::default(),
        key,
    }
}

/// A connection string with the password typed beside it. Reads `~/.pgpass` and the
/// environment: call it off the UI thread.
pub fn resolve(url: &str, password: &Password) -> Result<ConnectionSpec, String> {
    let mut spec =
        ConnectionSpec::resolve(url, &ProcessEnvironment).map_err(|error| error.to_string())?;
    if !password.is_empty() {
        for endpoint in &mut spec.endpoints {
            endpoint.password = Some(password.clone());
        }
    }
    Ok(spec)
}

/// How many events the mailbox holds before it drops the oldest progress reports.
const MAILBOX: usize = 256;

/// Capture's events on their way to the UI.
#[derive(Debug, Default)]
pub struct Mailbox {
    events: Mutex<VecDeque<CaptureEvent>>,
}

impl Mailbox {
    /// Adds an event without ever waiting long: a progress report takes the place of the previous
    /// report of its kind still waiting (moving to the end), and a full mailbox drops its oldest
    /// progress report (or, holding none, its oldest event).
    pub fn post(&self, event: CaptureEvent) {
        let Ok(mut events) = self.events.lock() else {
            return;
        };
        let kind = std::mem::discriminant(&event);
        if is_progress(&event)
            && let Some(older) = events
                .iter()
                .position(|waiting| std::mem::discriminant(waiting) == kind)
        {
            events.remove(older);
        }
        if events.len() >= MAILBOX {
            match events.iter().position(is_progress) {
                Some(oldest) => events.remove(oldest),
                None => events.pop_front(),
            };
        }
        events.push_back(event);
    }

    /// Everything that arrived, oldest first.
    pub fn take(&self) -> Vec<CaptureEvent> {
        self.events
            .lock()
            .map(|mut events| events.drain(..).collect())
            .unwrap_or_default()
    }
}

/// Events that only say how far capture is: a newer one makes an older one useless.
fn is_progress(event: &CaptureEvent) -> bool {
    matches!(
        event,
        CaptureEvent::Progress { .. }
            | CaptureEvent::SlotStatus { .. }
            | CaptureEvent::BaselineProgress { .. }
    )
}

/// How often, at most, the window takes in what a following capture stored when nothing else
/// happens: capture reports every second, and each look costs two frames (the report, then the
/// rows it asks for). Without a GPU a frame of a large window costs the software rasterizer a
/// tenth of a second or more, so looking every second would cost a fifth of a core.
pub const FOLLOW_REFRESH: std::time::Duration = std::time::Duration::from_secs(2);

/// Reports that only say how far capture is, while it follows: they wait for the next look.
fn is_routine(event: &CaptureEvent) -> bool {
    matches!(
        event,
        CaptureEvent::Progress { .. } | CaptureEvent::SlotStatus { .. }
    )
}

/// A running capture.
pub struct CaptureTask {
    stop: watch::Sender<bool>,
    mailbox: Arc<Mailbox>,
    thread: Option<JoinHandle<()>>,
}

impl CaptureTask {
    /// Starts capture; `new_baseline` lets it go on after a gap when its slot was lost.
    pub fn start(
        start: CaptureStart,
        new_baseline: bool,
        inbox: SyncSender<Message>,
        ctx: egui::Context,
    ) -> std::io::Result<Self> {
        let (stop, stopped) = watch::channel(false);
        let mailbox = Arc::new(Mailbox::default());
        let events = mailbox.clone();
        let events_ctx = ctx.clone();
        let observer: capture::Observer = Arc::new(move |event: CaptureEvent| {
            let routine = is_routine(&event);
            events.post(event);
            match routine {
                true => events_ctx.request_repaint_after(FOLLOW_REFRESH),
                false => events_ctx.request_repaint(),
            }
        });
        let thread = std::thread::Builder::new()
            .name("rowtrail-capture".into())
            .spawn(move || {
                let failure = |message: String| CaptureFailure {
                    message,
                    history_gap: false,
                };
                let result = start
                    .into_options()
                    .map_err(failure)
                    .and_then(|mut options| {
                        options.new_baseline = new_baseline;
                        let runtime = tokio::runtime::Builder::new_current_thread()
                            .enable_all()
                            .build()
                            .map_err(|error| {
                                failure(format!("could not start capture: {error}"))
                            })?;
                        runtime
                            .block_on(capture::run(options, observer, stopped))
                            .map_err(|error| CaptureFailure {
                                history_gap: matches!(
                                    error,
                                    CaptureError::SlotInvalidated { .. }
                                        | CaptureError::SlotMissing { .. }
                                ),
                                message: error.to_string(),
                            })
                    });
                // Off the runtime by now: waiting for room in the inbox blocks nothing else.
                let _ = inbox.send(Message::CaptureEnded(result.map(|_| ())));
                ctx.request_repaint();
            })?;
        Ok(Self {
            stop,
            mailbox,
            thread: Some(thread),
        })
    }

    /// The events capture reported since the last call.
    pub fn events(&self) -> Vec<CaptureEvent> {
        self.mailbox.take()
    }

    /// Asks capture to stop after the current transaction.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// Stops capture and waits for it to finish.
    pub fn stop_and_wait(mut self) {
        self.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // In tests a failed unwrap is a failed test.
mod tests {
    use super::*;
    use crate::model::Lsn;

    fn progress(changes: u64) -> CaptureEvent {
        CaptureEvent::Progress {
            stored: Lsn(changes),
            received: Lsn(changes),
            changes,
            transactions: 0,
            last_commit_time: None,
        }
    }

    #[test]
    fn item8_the_mailbox_coalesces_progress_and_never_loses_what_matters() {
        let mailbox = Mailbox::default();
        mailbox.post(CaptureEvent::Streaming { from: Lsn(1) });
        for changes in 0..10_000 {
            mailbox.post(progress(changes));
        }
        mailbox.post(CaptureEvent::Warning("careful".into()));
        mailbox.post(progress(10_000));
        let events = mailbox.take();
        assert_eq!(
            events,
            vec![
                CaptureEvent::Streaming { from: Lsn(1) },
                CaptureEvent::Warning("careful".into()),
                progress(10_000),
            ],
            "one progress report, the newest, after the warning it came after"
        );
        for index in 0..MAILBOX + 10 {
            mailbox.post(CaptureEvent::Warning(index.to_string()));
        }
        let events = mailbox.take();
        assert_eq!(events.len(), MAILBOX, "bounded");
        assert_eq!(
            events.last(),
            Some(&CaptureEvent::Warning((MAILBOX + 9).to_string()))
        );
        assert!(mailbox.take().is_empty());
    }
}
