//! `weir run`'s live progress on a terminal: a line per pipeline with its records, bytes,
//! rate and elapsed time, redrawn in place and cleared before the summaries print. Nothing
//! when stderr is not a terminal or the output is JSON: scripts and logs see no noise.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use weir_pipeline::Meter;

pub struct Progress {
    done: Arc<AtomicBool>,
    drawer: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    /// Draws `meters` (one per pipeline, named by `names`) when `wanted` and stderr is a
    /// terminal; otherwise does nothing.
    pub fn start(wanted: bool, names: &[String], meters: &[Arc<Meter>]) -> Progress {
        let done = Arc::new(AtomicBool::new(false));
        if !wanted || !std::io::stderr().is_terminal() {
            return Progress { done, drawer: None };
        }
        let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4));
        let style = ProgressStyle::with_template("{spinner} {prefix:.bold} {msg}")
            .expect("a valid template");
        let width = names.iter().map(String::len).max().unwrap_or(0);
        let lines: Vec<(ProgressBar, Arc<Meter>)> = names
            .iter()
            .zip(meters)
            .map(|(name, meter)| {
                let bar = bars.add(ProgressBar::new_spinner());
                bar.set_style(style.clone());
                bar.set_prefix(format!("{name:<width$}"));
                (bar, meter.clone())
            })
            .collect();
        let drawer = {
            let done = done.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                while !done.load(Ordering::Relaxed) {
                    let elapsed = started.elapsed();
                    for (bar, meter) in &lines {
                        bar.set_message(line(&meter.read(), elapsed));
                        bar.tick();
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
                for (bar, _) in &lines {
                    bar.finish_and_clear();
                }
                let _ = bars.clear();
            })
        };
        Progress {
            done,
            drawer: Some(drawer),
        }
    }

    /// Clears the lines (before the summaries print).
    pub fn finish(mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(drawer) = self.drawer.take() {
            let _ = drawer.join();
        }
    }
}

/// `12,345 records read, 12,000 written · 1.1 MiB · 4,100 records/s · 3s`.
fn line(m: &weir_pipeline::MeterReading, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64().max(0.001);
    format!(
        "{} records read, {} written · {} · {} records/s · {}",
        thousands(m.records_in),
        thousands(m.records_out),
        bytesize::ByteSize(m.bytes_in).display().iec(),
        thousands((m.records_out as f64 / seconds) as u64),
        humantime::format_duration(Duration::from_secs(elapsed.as_secs()))
    )
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_reads_well() {
        let m = weir_pipeline::MeterReading {
            records_in: 12_345,
            records_out: 12_000,
            bytes_in: 1_153_434,
            ..Default::default()
        };
        assert_eq!(
            line(&m, Duration::from_millis(3_100)),
            "12,345 records read, 12,000 written · 1.1 MiB · 3,870 records/s · 3s"
        );
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }
}
