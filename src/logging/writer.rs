//! Where log lines go: appended by any thread to one batch in memory, which a
//! background thread writes to stderr.
//!
//! A request never waits on the log's file or pipe, and under load the log
//! costs a memory copy per line: the writer thread gathers lines for up to
//! [`GATHER`] and writes them with one call, so it wakes and writes a few
//! dozen times a second however many lines arrive. (The queue this replaces
//! woke its thread with a futex, and the thread wrote, for nearly every
//! line: ≈ 3 system calls and a context switch per request on a 2-core
//! machine, ≈ 8 % of a presign's throughput.) Warnings and errors, and the
//! end of the process, are written at once. A batch larger than [`LIMIT`]
//! drops further lines and counts them, so a stalled stderr cannot grow
//! memory without bound or stall a request; lines a failing stderr refused
//! are counted the same way. At the end of the process the log waits at
//! most [`FINISH_WITHIN`] for its last lines to be written.

use std::io::{self, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// Longest a line waits in the batch before it is written.
const GATHER: Duration = Duration::from_millis(25);

/// Bytes that end the gathering early: the batch is written at once.
const FLUSH_AT: usize = 256 << 10;

/// Most bytes a batch holds; lines beyond it are dropped (and counted).
const LIMIT: usize = 8 << 20;

/// Capacity a written batch keeps for the next one: room for a batch that
/// reached [`FLUSH_AT`] and the lines that came while the writer woke. Less,
/// and under load every batch grew anew past glibc's mmap threshold, each
/// growth a fresh mapping faulted in page by page: 2,500–5,500 page faults
/// a second at 70k presigns a second (`perf stat -e page-faults`), a few
/// in the first seconds with this. Costs at most twice this in memory once
/// the log is busy.
const KEEP: usize = 2 * FLUSH_AT;

/// Longest the end of the process waits for the last lines: a stderr that
/// takes nothing (a pipe nobody reads) must not keep the process alive.
const FINISH_WITHIN: Duration = Duration::from_secs(2);

/// The lines waiting to be written.
#[derive(Debug, Default)]
struct Batch {
    bytes: Vec<u8>,
    /// Holds a warning or an error: write without gathering.
    urgent: bool,
    /// The process is ending: write what is left and stop.
    closing: bool,
    /// The writer thread has written its last batch.
    done: bool,
}

#[derive(Debug)]
struct Shared {
    /// How long a batch gathers ([`GATHER`]; tests set their own).
    gather: Duration,
    batch: Mutex<Batch>,
    /// Signalled when a batch starts, turns urgent or full, or the log closes.
    ready: Condvar,
    /// Signalled when the writer thread is done.
    finished: Condvar,
    dropped: AtomicUsize,
}

impl Shared {
    fn new(gather: Duration) -> Self {
        Self {
            gather,
            batch: Mutex::default(),
            ready: Condvar::new(),
            finished: Condvar::new(),
            dropped: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Batch> {
        self.batch.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends one whole line, or drops it when the batch is full.
    fn push(&self, line: &[u8], urgent: bool) {
        let mut batch = self.lock();
        let held = batch.bytes.len();
        if held + line.len() > LIMIT {
            drop(batch);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        batch.bytes.extend_from_slice(line);
        let wake = held == 0
            || (urgent && !batch.urgent)
            || (held < FLUSH_AT && batch.bytes.len() >= FLUSH_AT);
        batch.urgent |= urgent;
        drop(batch);
        if wake {
            self.ready.notify_one();
        }
    }

    /// The writer thread: waits for a batch, lets it gather, writes it.
    fn run(&self, mut out: impl Write) {
        let mut spare = Vec::with_capacity(KEEP);
        let mut written = Written::default();
        loop {
            let mut batch = self.lock();
            while batch.bytes.is_empty() && !batch.closing {
                batch = self
                    .ready
                    .wait(batch)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            let gathered_by = Instant::now() + self.gather;
            while !batch.urgent && !batch.closing && batch.bytes.len() < FLUSH_AT {
                let left = gathered_by.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                batch = self
                    .ready
                    .wait_timeout(batch, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
            std::mem::swap(&mut batch.bytes, &mut spare);
            batch.urgent = false;
            let last = batch.closing && batch.bytes.is_empty();
            drop(batch);
            let lost = written.write(&mut out, &spare);
            self.dropped.fetch_add(lost, Ordering::Relaxed);
            spare.clear();
            spare.shrink_to(KEEP);
            if last {
                self.lock().done = true;
                self.finished.notify_all();
                return;
            }
        }
    }
}

/// What the writer thread has written so far: whether its output ends
/// inside a line that a failed write cut short.
#[derive(Debug, Default)]
struct Written {
    torn: bool,
}

impl Written {
    /// Writes `batch` (whole lines) to `out`; the number of lines lost to
    /// an error (a line cut short counts). After a cut, the next batch
    /// starts on a line of its own.
    fn write(&mut self, out: &mut impl Write, batch: &[u8]) -> usize {
        let mut rest = batch;
        if self.torn && !rest.is_empty() && write_fully(out, b"\n").is_empty() {
            self.torn = false;
        }
        if !self.torn {
            rest = write_fully(out, rest);
        }
        let _ = out.flush();
        let sent = &batch[..batch.len() - rest.len()];
        if !rest.is_empty() && sent.last().is_some_and(|&b| b != b'\n') {
            self.torn = true;
        }
        rest.iter().filter(|&&b| b == b'\n').count()
    }
}

/// Writes as much of `bytes` as `out` takes before an error: what is left.
fn write_fully<'a>(out: &mut impl Write, mut bytes: &'a [u8]) -> &'a [u8] {
    while !bytes.is_empty() {
        match out.write(bytes) {
            Ok(0) => break,
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    bytes
}

/// Hands each log line to the batch; `tracing_subscriber` asks it for a
/// writer per event and writes the whole line with one call.
#[derive(Debug, Clone)]
pub(super) struct BatchWriter(Arc<Shared>);

/// The writer of one event.
#[derive(Debug)]
pub(super) struct Line<'a> {
    shared: &'a Shared,
    urgent: bool,
}

impl Write for Line<'_> {
    fn write(&mut self, line: &[u8]) -> io::Result<usize> {
        self.shared.push(line, self.urgent);
        Ok(line.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchWriter {
    type Writer = Line<'a>;

    fn make_writer(&'a self) -> Line<'a> {
        Line {
            shared: &self.0,
            urgent: false,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Line<'a> {
        Line {
            shared: &self.0,
            urgent: *meta.level() <= Level::WARN,
        }
    }
}

impl BatchWriter {
    /// A writer for one line; `urgent` for a warning or an error.
    pub(super) fn line(&self, urgent: bool) -> Line<'_> {
        Line {
            shared: &self.0,
            urgent,
        }
    }

    /// Lines dropped so far: the batch was full, or the output refused them.
    pub(super) fn dropped(&self) -> usize {
        self.0.dropped.load(Ordering::Relaxed)
    }
}

/// Writes what is left and stops the writer thread when dropped.
#[derive(Debug)]
pub struct Flush {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Flush {
    fn drop(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        let mut batch = self.shared.lock();
        batch.closing = true;
        self.shared.ready.notify_one();
        let (batch, waited) = self
            .shared
            .finished
            .wait_timeout_while(batch, FINISH_WITHIN, |batch| !batch.done)
            .unwrap_or_else(PoisonError::into_inner);
        drop(batch);
        if waited.timed_out() {
            // Left blocked in a write; it ends with the process.
            return;
        }
        let _ = thread.join();
    }
}

/// A writer for the subscriber and the guard that flushes it, writing to
/// `out` from a thread of its own. If no thread can be started, which is
/// said on stderr, lines are held up to [`LIMIT`], then dropped and counted.
pub(super) fn start(out: impl Write + Send + 'static) -> (BatchWriter, Flush) {
    start_gathering(out, GATHER)
}

fn start_gathering(out: impl Write + Send + 'static, gather: Duration) -> (BatchWriter, Flush) {
    let shared = Arc::new(Shared::new(gather));
    let worker = shared.clone();
    let thread = std::thread::Builder::new()
        .name("s3gate-log".into())
        .spawn(move || worker.run(out))
        .inspect_err(|e| {
            // The log itself cannot carry this.
            let _ = writeln!(
                io::stderr(),
                "s3gate: cannot start the log's writer thread ({e}): no lines will be written"
            );
        })
        .ok();
    let flush = Flush {
        shared: shared.clone(),
        thread,
    };
    (BatchWriter(shared), flush)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink the test can read, and wait on, while the writer thread writes to it.
    #[derive(Clone, Default)]
    struct Sink(Arc<(Mutex<Vec<Vec<u8>>>, Condvar)>);

    impl Sink {
        fn writes(&self) -> Vec<Vec<u8>> {
            self.0 .0.lock().unwrap().clone()
        }

        /// Waits (at most `limit`) until the bytes written are `expected`.
        fn wait_for(&self, expected: &[u8], limit: Duration) -> Vec<u8> {
            let (writes, written) = &*self.0;
            let writes = written
                .wait_timeout_while(writes.lock().unwrap(), limit, |w| w.concat() != expected)
                .unwrap()
                .0;
            writes.concat()
        }
    }

    impl Write for Sink {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            if !bytes.is_empty() {
                self.0 .0.lock().unwrap().push(bytes.to_vec());
                self.0 .1.notify_all();
            }
            Ok(bytes.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn line<'a>(writer: &'a BatchWriter, level: Level) -> Line<'a> {
        Line {
            shared: &writer.0,
            urgent: level <= Level::WARN,
        }
    }

    #[test]
    fn lines_are_written_whole_in_order_in_few_writes() {
        let sink = Sink::default();
        let (writer, flush) = start(sink.clone());
        for i in 0..1000 {
            // As the subscriber does: the whole line in one call.
            let text = format!("line {i}\n");
            line(&writer, Level::INFO)
                .write_all(text.as_bytes())
                .unwrap();
        }
        drop(flush);
        let writes = sink.writes();
        let text = String::from_utf8(writes.concat()).unwrap();
        let expected: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        assert_eq!(text, expected);
        assert!(writes.len() < 100, "{} writes for 1000 lines", writes.len());
        assert_eq!(writer.dropped(), 0);
    }

    #[test]
    fn a_warning_is_written_without_waiting_for_the_batch() {
        // Batches gather for an hour: only the warning can have them written.
        let sink = Sink::default();
        let (writer, _flush) = start_gathering(sink.clone(), Duration::from_secs(3600));
        line(&writer, Level::INFO).write_all(b"info\n").unwrap();
        line(&writer, Level::WARN).write_all(b"warn\n").unwrap();
        let written = sink.wait_for(b"info\nwarn\n", Duration::from_secs(10));
        assert_eq!(written, b"info\nwarn\n");
    }

    /// A sink that takes `takes` bytes in all, then fails every write.
    struct Failing {
        takes: usize,
        taken: Vec<u8>,
    }

    impl Write for Failing {
        fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
            let n = bytes.len().min(self.takes - self.taken.len());
            if n == 0 {
                return Err(io::ErrorKind::BrokenPipe.into());
            }
            self.taken.extend_from_slice(&bytes[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_a_failing_output_refused_are_counted_and_a_cut_line_is_ended() {
        let mut written = Written::default();
        let mut out = Failing {
            takes: 4,
            taken: Vec::new(),
        };
        // "cd" is cut after "c": it and "ef" are lost.
        assert_eq!(written.write(&mut out, b"ab\ncd\nef\n"), 2);
        assert_eq!(written.write(&mut out, b"gh\n"), 1);
        // Once the output takes bytes again, the cut line is ended first.
        out.takes = 100;
        assert_eq!(written.write(&mut out, b"ij\n"), 0);
        assert_eq!(out.taken, b"ab\nc\nij\n");
    }

    /// A sink whose writes block until the test lets them go.
    struct Stuck {
        entered: std::sync::mpsc::Sender<()>,
        release: std::sync::mpsc::Receiver<()>,
    }

    impl Write for Stuck {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            let _ = self.entered.send(());
            let _ = self.release.recv();
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_end_of_the_process_does_not_wait_on_an_output_that_takes_nothing() {
        let (entered, writing) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel();
        let (writer, flush) = start(Stuck {
            entered,
            release: released,
        });
        line(&writer, Level::WARN).write_all(b"warn\n").unwrap();
        writing.recv_timeout(Duration::from_secs(10)).unwrap();
        let start = Instant::now();
        drop(flush);
        let waited = start.elapsed();
        assert!(waited >= FINISH_WITHIN, "{waited:?}");
        assert!(
            waited < FINISH_WITHIN + Duration::from_secs(5),
            "{waited:?}"
        );
        drop(release);
    }

    #[test]
    fn a_full_batch_drops_and_counts_lines_never_splits_one() {
        let shared = Shared::new(GATHER);
        let line = vec![b'x'; 1000];
        for _ in 0..(LIMIT / 1000 + 10) {
            shared.push(&line, false);
        }
        let batch = shared.lock();
        assert_eq!(batch.bytes.len(), LIMIT / 1000 * 1000);
        assert_eq!(shared.dropped.load(Ordering::Relaxed), 10);
    }
}
