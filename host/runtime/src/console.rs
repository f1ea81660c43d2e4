//! A guest's stdout and stderr. Each whole line goes to the log (target `weir::guest`,
//! with the pipeline, plugin, role and stream), held to the instance's log budget like its
//! `log` calls; and the last few KiB are kept so that a trap's error can show what the
//! guest printed before it died (a Rust panic message, a Python traceback).

use crate::host::LogBudget;
use crate::sandbox::Labels;
use bytes::Bytes;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

const KEEP: usize = 4096;
/// A line longer than this is logged in pieces of this size.
const MAX_LINE: usize = 4096;

/// One of the two streams; both share the tail.
#[derive(Clone)]
pub struct ConsoleTail {
    tail: Arc<Mutex<VecDeque<u8>>>,
    lines: Arc<Mutex<Lines>>,
}

struct Lines {
    stream: &'static str,
    /// The line being written, not yet ended.
    partial: Vec<u8>,
    labels: Labels,
    budget: Arc<Mutex<LogBudget>>,
}

impl ConsoleTail {
    /// stdout and stderr over one tail, logging under `labels` within `budget`.
    pub(crate) fn pair(
        labels: &Labels,
        budget: &Arc<Mutex<LogBudget>>,
    ) -> (ConsoleTail, ConsoleTail) {
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let stream = |stream| ConsoleTail {
            tail: tail.clone(),
            lines: Arc::new(Mutex::new(Lines {
                stream,
                partial: Vec::new(),
                labels: labels.clone(),
                budget: budget.clone(),
            })),
        };
        (stream("stdout"), stream("stderr"))
    }

    fn push(&self, bytes: &[u8]) {
        {
            let mut tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
            let kept = &bytes[bytes.len().saturating_sub(KEEP)..];
            let overflow = (tail.len() + kept.len()).saturating_sub(KEEP);
            tail.drain(..overflow);
            tail.extend(kept);
        }
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines.partial.extend_from_slice(bytes);
        while let Some(end) = lines.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = lines.partial.drain(..=end).collect();
            lines.log(&line[..line.len() - 1]);
        }
        while lines.partial.len() > MAX_LINE {
            let piece: Vec<u8> = lines.partial.drain(..MAX_LINE).collect();
            lines.log(&piece);
        }
    }

    /// What the guest printed last, trimmed.
    pub fn text(&self) -> String {
        let tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        let (a, b) = tail.as_slices();
        let mut all = Vec::with_capacity(tail.len());
        all.extend_from_slice(a);
        all.extend_from_slice(b);
        String::from_utf8_lossy(&all).trim().to_string()
    }
}

impl Lines {
    fn log(&self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches('\r');
        let mut budget = self.budget.lock().unwrap_or_else(|e| e.into_inner());
        if !budget.admit(line.len(), &self.labels) {
            return;
        }
        tracing::info!(
            target: "weir::guest",
            pipeline = %self.labels.pipeline,
            plugin = %self.labels.plugin,
            role = self.labels.role,
            stream = self.stream,
            "{line}"
        );
    }
}

impl IsTerminal for ConsoleTail {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for ConsoleTail {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for ConsoleTail {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for ConsoleTail {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for ConsoleTail {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (ConsoleTail, ConsoleTail) {
        let labels = Labels {
            pipeline: "p".into(),
            plugin: "x".into(),
            role: "source",
        };
        let budget = Arc::new(Mutex::new(LogBudget::new(
            &crate::sandbox::Limits::default(),
        )));
        ConsoleTail::pair(&labels, &budget)
    }

    #[test]
    fn keeps_only_the_tail() {
        let (tail, _) = pair();
        tail.push(&vec![b'a'; KEEP]);
        tail.push(b"panicked at src/lib.rs:1");
        let text = tail.text();
        assert_eq!(text.len(), KEEP);
        assert!(text.ends_with("panicked at src/lib.rs:1"));
    }

    #[test]
    fn both_streams_share_the_tail_and_lines_are_split() {
        let (out, err) = pair();
        out.push(b"one\ntw");
        err.push(b"oops\n");
        out.push(b"o\n");
        assert_eq!(out.text(), "one\ntwoops\no");
        let lines = out.lines.lock().unwrap();
        assert!(lines.partial.is_empty());
    }
}
