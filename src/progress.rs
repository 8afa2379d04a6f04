//! What a build tells the person or scheduler watching it: one line per
//! finished step (model or table) for logs, or, with `--progress` on a
//! terminal, a status line that shows the step running, how long it has
//! run and how far the build is.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How a build reports its steps on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMode {
    /// Nothing (`--quiet`).
    Quiet,
    /// A line when a step starts and when it ends: for logs and schedulers.
    Lines,
    /// A status line redrawn in place while a step runs, and a line per
    /// finished step (`--progress`; lines when stderr is not a terminal).
    Live,
}

/// The steps of one build, reported as they start and end.
pub struct Progress {
    mode: ProgressMode,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

struct State {
    total: usize,
    /// Steps started and finished: with steps running together, a step's
    /// start and its end are numbered apart, each counting up to `total`.
    started: usize,
    done: usize,
    build_started: Instant,
    /// The steps running, oldest first: a build runs a table that reads
    /// no model beside the models, and ready tables two at a time.
    running: Vec<(String, Instant)>,
}

/// A step that has started; `Progress::finish` ends it.
pub struct Step {
    label: String,
    started: Instant,
}

impl Step {
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Progress {
    pub fn new(mode: ProgressMode) -> Progress {
        let mode = match mode {
            ProgressMode::Live if !std::io::stderr().is_terminal() => ProgressMode::Lines,
            m => m,
        };
        let state = Arc::new(Mutex::new(State {
            total: 0,
            started: 0,
            done: 0,
            build_started: Instant::now(),
            running: Vec::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = (mode == ProgressMode::Live).then(|| {
            let state = state.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    draw(&state.lock().expect("progress state"));
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        });
        Progress {
            mode,
            state,
            stop,
            ticker,
        }
    }

    /// Reports nothing: for commands that plan without building.
    pub fn quiet() -> Progress {
        Progress::new(ProgressMode::Quiet)
    }

    /// Steps still to come are added as they become known.
    pub fn add_steps(&self, n: usize) {
        self.state.lock().expect("progress state").total += n;
    }

    /// Prints a line outside the step count (skipped tables, notes).
    pub fn note(&self, line: &str) {
        if self.mode != ProgressMode::Quiet {
            self.print(line);
        }
    }

    pub fn start(&self, kind: &str, name: &str) -> Step {
        let label = format!("{kind} {name}");
        let mut state = self.state.lock().expect("progress state");
        state.running.push((label.clone(), Instant::now()));
        state.started += 1;
        if self.mode == ProgressMode::Lines {
            eprintln!("[{}/{}] building {label}", state.started, state.total);
        }
        Step {
            label,
            started: Instant::now(),
        }
    }

    /// Ends a step; returns its seconds.
    pub fn finish(&self, step: Step, rows: u64) -> f64 {
        let seconds = step.started.elapsed().as_secs_f64();
        let line = {
            let mut state = self.state.lock().expect("progress state");
            state.done += 1;
            if let Some(i) = state.running.iter().position(|(l, _)| *l == step.label) {
                state.running.remove(i);
            }
            format!(
                "[{}/{}] {}: {rows} row{} in {seconds:.2}s",
                state.done,
                state.total,
                step.label,
                if rows == 1 { "" } else { "s" }
            )
        };
        if self.mode != ProgressMode::Quiet {
            self.print(&line);
        }
        seconds
    }

    fn print(&self, line: &str) {
        let mut err = std::io::stderr().lock();
        if self.mode == ProgressMode::Live {
            // Clear the status line, print, and let the ticker redraw it.
            let _ = write!(err, "\r\x1b[2K");
        }
        let _ = writeln!(err, "{line}");
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(ticker) = self.ticker.take() {
            let _ = ticker.join();
            let _ = write!(std::io::stderr(), "\r\x1b[2K");
        }
    }
}

/// The status line: `[ 7/22  31%] model customer_health 4.2s · build 12.9s`
/// (steps running together are listed with commas).
fn draw(state: &State) {
    if state.running.is_empty() {
        return;
    }
    let running: Vec<String> = state
        .running
        .iter()
        .map(|(label, since)| format!("{label} {:.1}s", since.elapsed().as_secs_f64()))
        .collect();
    let percent = (state.done * 100).checked_div(state.total).unwrap_or(0);
    let mut err = std::io::stderr().lock();
    let _ = write!(
        err,
        "\r\x1b[2K[{:>w$}/{} {percent:>3}%] {} · build {:.1}s",
        state.done + 1,
        state.total,
        running.join(", "),
        state.build_started.elapsed().as_secs_f64(),
        w = state.total.to_string().len(),
    );
    let _ = err.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_steps_and_returns_their_seconds() {
        let progress = Progress::new(ProgressMode::Quiet);
        progress.add_steps(2);
        let step = progress.start("model", "m");
        std::thread::sleep(Duration::from_millis(5));
        let seconds = progress.finish(step, 3);
        assert!(seconds >= 0.005, "{seconds}");
        let state = progress.state.lock().unwrap();
        assert_eq!((state.done, state.total), (1, 2));
        assert!(state.running.is_empty());
    }

    #[test]
    fn steps_running_together_end_in_any_order() {
        let progress = Progress::new(ProgressMode::Quiet);
        progress.add_steps(2);
        let health = progress.start("model", "customer_health");
        let rejected = progress.start("table", "rejected_rows");
        progress.finish(rejected, 10);
        {
            let state = progress.state.lock().unwrap();
            let running: Vec<&str> = state.running.iter().map(|(l, _)| l.as_str()).collect();
            assert_eq!(running, ["model customer_health"]);
            assert_eq!(state.done, 1);
        }
        progress.finish(health, 5);
        let state = progress.state.lock().unwrap();
        assert!(state.running.is_empty());
        assert_eq!((state.done, state.total), (2, 2));
    }

    #[test]
    fn live_mode_falls_back_to_lines_without_a_terminal() {
        // cargo test captures stderr through a pipe: not a terminal.
        if !std::io::stderr().is_terminal() {
            assert_eq!(Progress::new(ProgressMode::Live).mode, ProgressMode::Lines);
        }
    }
}
