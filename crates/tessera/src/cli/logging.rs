//! The server's log: `tracing` lines on stderr, written in batches by a thread of their own.
//!
//! Every request logs one line. Written one `write(2)` each from the request's worker, the lines
//! cost a system call per request on the hot path; here a worker only appends its formatted line
//! to a shared buffer, and a writer thread hands whatever has gathered to stderr in one write,
//! then lets the next lines gather for [`LINGER`]. Nothing is dropped: a worker that finds
//! [`MAX_PENDING`] bytes waiting blocks until the writer has caught up, as it would have blocked
//! on a slow stderr. [`LogGuard`] writes out what is left when the server stops; a process killed
//! with `kill -9` loses at most the last [`LINGER`] of lines, which a write per line could lose
//! too (a line is never half written: each goes to the buffer whole).

use std::io::Write as _;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tracing_subscriber::fmt::MakeWriter;

/// How long lines gather after a write before the next one.
const LINGER: Duration = Duration::from_millis(2);

/// The most bytes waiting for the writer before workers wait for it.
const MAX_PENDING: usize = 4 * 1024 * 1024;

/// Installs the subscriber for `serve`: `filter` as an `EnvFilter` (`info` if it does not parse),
/// text or JSON lines; the guard writes out the last lines when dropped.
pub(super) fn init(filter: &str, json: bool) -> LogGuard {
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let (writer, guard) = batched(std::io::stderr());
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(writer);
    let _ = match json {
        true => builder.json().try_init(),
        false => builder.try_init(),
    };
    guard
}

/// A [`MakeWriter`] whose lines `out` receives in batches from a thread of its own, and the guard
/// that ends that thread after the last line.
fn batched<W: std::io::Write + Send + 'static>(out: W) -> (Batched, LogGuard) {
    let shared = Arc::new(Shared { state: Mutex::new(State::default()), wake: Condvar::new() });
    let thread = {
        let shared = shared.clone();
        std::thread::Builder::new()
            .name("tessera-log".into())
            .spawn(move || write_out(&shared, out))
            .ok()
    };
    let writer = Batched { shared: shared.clone(), direct: thread.is_none() };
    (writer, LogGuard { shared, thread })
}

struct Shared {
    state: Mutex<State>,
    /// The writer waits here for lines (or the end); workers wait here for room.
    wake: Condvar,
}

#[derive(Default)]
struct State {
    pending: Vec<u8>,
    /// The writer is asleep on `wake` and must be woken for new lines.
    writer_waiting: bool,
    /// Workers are asleep on `wake` for room in `pending`.
    workers_waiting: usize,
    closed: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held leaves whole lines or none: the buffer is still usable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The writer thread: takes everything pending, writes it in one go, lingers, repeats; after
/// `closed`, writes what is left and returns.
fn write_out<W: std::io::Write>(shared: &Shared, mut out: W) {
    let mut batch = Vec::new();
    loop {
        let closed = {
            let mut state = shared.lock();
            while state.pending.is_empty() && !state.closed {
                state.writer_waiting = true;
                state = shared.wake.wait(state).unwrap_or_else(PoisonError::into_inner);
                state.writer_waiting = false;
            }
            std::mem::swap(&mut batch, &mut state.pending);
            if state.workers_waiting > 0 {
                shared.wake.notify_all();
            }
            state.closed
        };
        // A failed write (stderr closed) drops the batch: there is nowhere else for it to go.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        if closed {
            // Nothing joins `pending` after the end: workers write straight to stderr then.
            return;
        }
        // Lines gather while the writer lingers: workers do not wake it (it is not waiting for
        // lines), only the end does.
        let state = shared.lock();
        let _ = shared.wake.wait_timeout_while(state, LINGER, |state| !state.closed);
    }
}

/// The `MakeWriter` the subscriber writes each line through.
#[derive(Clone)]
pub(super) struct Batched {
    shared: Arc<Shared>,
    /// The writer thread could not be started: lines go to stderr one by one.
    direct: bool,
}

impl<'a> MakeWriter<'a> for Batched {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line { shared: self.shared.clone(), direct: self.direct, buf: Vec::with_capacity(256) }
    }
}

/// One log line being formatted; handed over whole when dropped.
pub(super) struct Line {
    shared: Arc<Shared>,
    direct: bool,
    buf: Vec<u8>,
}

impl std::io::Write for Line {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let mut state = self.shared.lock();
        while !self.direct && !state.closed && state.pending.len() >= MAX_PENDING {
            state.workers_waiting += 1;
            state = self.shared.wake.wait(state).unwrap_or_else(PoisonError::into_inner);
            state.workers_waiting -= 1;
        }
        // Checked after any wait: the writer may have ended meanwhile, and then takes no more.
        if self.direct || state.closed {
            drop(state);
            let _ = std::io::stderr().write_all(&self.buf);
            return;
        }
        state.pending.extend_from_slice(&self.buf);
        if state.writer_waiting {
            self.shared.wake.notify_all();
        }
    }
}

/// Ends the writer thread once every line handed over so far is written.
pub(super) struct LogGuard {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// A `Write` that keeps what it was given and counts the writes.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<(Vec<u8>, usize)>>);

    impl std::io::Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let mut it = self.0.lock().unwrap();
            it.0.extend_from_slice(bytes);
            it.1 += 1;
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_of_parallel_workers_arrives_whole_and_in_fewer_writes() {
        let sink = Sink::default();
        let (writer, guard) = batched(sink.clone());
        let workers: Vec<_> = (0..8)
            .map(|w| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..2_000 {
                        let mut line = writer.make_writer();
                        // Written in pieces, as the formatter does.
                        write!(line, "worker {w} ").unwrap();
                        writeln!(line, "line {i}").unwrap();
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        drop(guard);
        let (bytes, writes) = sink.0.lock().unwrap().clone();
        let text = String::from_utf8(bytes).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 16_000, "no line lost at the end");
        lines.sort_unstable();
        lines.dedup();
        assert_eq!(lines.len(), 16_000, "no line twice, none torn");
        for w in 0..8 {
            let mine: Vec<usize> = text
                .lines()
                .filter_map(|it| it.strip_prefix(&format!("worker {w} line ")))
                .map(|it| it.parse().unwrap())
                .collect();
            assert_eq!(mine, (0..2_000).collect::<Vec<_>>(), "one worker's lines in its order");
        }
        assert!(writes < 16_000, "lines were batched: {writes} writes");
    }

    #[test]
    fn a_full_buffer_holds_workers_back_and_loses_nothing() {
        let sink = Sink::default();
        let (writer, guard) = batched(sink.clone());
        // Each line is a quarter of the cap, so workers keep meeting a full buffer.
        let big = "x".repeat(MAX_PENDING / 4);
        let workers: Vec<_> = (0..4)
            .map(|w| {
                let writer = writer.clone();
                let big = big.clone();
                std::thread::spawn(move || {
                    for i in 0..6 {
                        writeln!(writer.make_writer(), "{w} {i} {big}").unwrap();
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        drop(guard);
        let (bytes, _) = sink.0.lock().unwrap().clone();
        assert_eq!(bytes.len(), 24 * (big.len() + "0 0 \n".len()));
        assert_eq!(bytes.iter().filter(|b| **b == b'\n').count(), 24);
    }

    #[test]
    fn lines_after_the_end_still_reach_stderr_rather_than_vanish() {
        let sink = Sink::default();
        let (writer, guard) = batched(sink.clone());
        writeln!(writer.make_writer(), "before").unwrap();
        drop(guard);
        // Written straight to stderr (not to the sink) once the writer has ended.
        writeln!(writer.make_writer(), "after").unwrap();
        let (bytes, _) = sink.0.lock().unwrap().clone();
        assert_eq!(bytes, b"before\n");
    }
}
