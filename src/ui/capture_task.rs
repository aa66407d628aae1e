//! Capture in the background: `capture::run` on a tokio runtime in a named thread, reporting to
//! the app's inbox. Stopping it lets capture finish the transaction at hand.

use std::sync::Arc;
use std::sync::mpsc::SyncSender;
use std::thread::JoinHandle;

use tokio::sync::watch;

use crate::capture::{self, CaptureEvent, CaptureOptions};

use super::Message;

/// A running capture.
pub struct CaptureTask {
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl CaptureTask {
    pub fn start(
        options: CaptureOptions,
        inbox: SyncSender<Message>,
        ctx: egui::Context,
    ) -> std::io::Result<Self> {
        let (stop, stopped) = watch::channel(false);
        let events = inbox.clone();
        let events_ctx = ctx.clone();
        let observer: capture::Observer = Arc::new(move |event: CaptureEvent| {
            let _ = events.send(Message::Capture(event));
            events_ctx.request_repaint();
        });
        let thread = std::thread::Builder::new()
            .name("rowtrail-capture".into())
            .spawn(move || {
                let result = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|error| format!("could not start capture: {error}"))
                    .and_then(|runtime| {
                        runtime
                            .block_on(capture::run(options, observer, stopped))
                            .map_err(|error| error.to_string())
                    });
                let _ = inbox.send(Message::CaptureEnded(result.map(|_| ())));
                ctx.request_repaint();
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
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
