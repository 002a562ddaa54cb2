//! Showing a SYNC's progress while it runs: a live bar on a terminal, one JSON line per event
//! with `--json`, nothing otherwise (a script or a pipe gets no animation).

use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;
use stream::{ObjectState, PeerRequest, ProgressEvent, UNKNOWN_TOTAL, WHOLE_SYNC};

use crate::report::bytes_text;

/// What one command shows of its progress.
pub struct Shown {
    json: bool,
    bar: Option<ProgressBar>,
    started: Instant,
    objects_total: usize,
}

impl Shown {
    pub fn new(peer_requests: &[PeerRequest], json: bool, bars: bool, started: Instant) -> Self {
        let objects_total = peer_requests.iter().map(|p| p.objects().len()).sum();
        let bar = bars.then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stdout());
            // The template is a constant; a bad one would only lose the styling.
            let style = ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.set_message(format!("0/{objects_total} objects"));
            bar
        });
        Shown {
            json,
            bar,
            started,
            objects_total,
        }
    }

    /// One event from the server.
    pub fn event(&mut self, event: ProgressEvent) {
        if self.json {
            println!("{}", self.json_line(event));
        }
        let Some(bar) = &self.bar else {
            return;
        };
        match event {
            ProgressEvent::Progress(p) if p.peer_request == WHOLE_SYNC => {
                if p.bytes_total != UNKNOWN_TOTAL {
                    bar.set_length(p.bytes_total);
                }
                bar.set_position(p.bytes_done);
                bar.set_message(format!("{}/{} objects", p.objects_done, self.objects_total));
            }
            ProgressEvent::Progress(_) => {}
            ProgressEvent::Object(o) if o.state == ObjectState::Failed => {
                // Printed above the bar, so it stays when the bar is cleared.
                bar.println(format!("{}: did not arrive (the report says why)", o.id));
            }
            ProgressEvent::Object(_) => {}
        }
    }

    fn json_line(&self, event: ProgressEvent) -> String {
        let seconds = self.started.elapsed().as_secs_f64();
        match event {
            ProgressEvent::Progress(p) => json!({
                "event": "progress",
                "peer_request": if p.peer_request == WHOLE_SYNC { json!("all") } else { json!(p.peer_request) },
                "bytes_done": p.bytes_done,
                "bytes_total": if p.bytes_total == UNKNOWN_TOTAL { json!(null) } else { json!(p.bytes_total) },
                "objects_done": p.objects_done,
                "objects_total": p.objects_total,
                "seconds": seconds,
            }),
            ProgressEvent::Object(o) => json!({
                "event": "object",
                "peer_request": o.peer_request,
                "id": o.id.to_string(),
                "state": match o.state {
                    ObjectState::Started => "started",
                    ObjectState::Arrived => "arrived",
                    ObjectState::Failed => "failed",
                },
                "size": o.size,
                "size_text": bytes_text(o.size),
                "seconds": seconds,
            }),
        }
        .to_string()
    }

    /// The command ended: the bar goes away before the report is printed.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}
