//! The crash-tolerant trace file recorder: callers encode, one thread writes.

use crate::recorder::Recorder;
use crossbeam::channel::{self, Receiver, Sender};
use parking_lot::Mutex;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::Duration;
use thiserror::Error;
use ttsan_events::trace::{encode_record, TraceWriter};
use ttsan_events::Event;

/// How often the writer thread flushes when events keep coming: bounds what a crash can lose.
const FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// Frames in flight at most; producers wait beyond that rather than grow memory without bound.
const CHANNEL_CAPACITY: usize = 4096;

/// A failure of the trace file.
#[derive(Debug, Error)]
pub enum RecorderError {
    /// The trace file could not be created.
    #[error("cannot create trace file {path}: {source}")]
    Create {
        /// The path.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// Writing failed (disk full?); the records before the failure are intact.
    #[error("writing trace file {path} failed after {records} records: {source}")]
    Write {
        /// The path.
        path: PathBuf,
        /// Records written before the failure.
        records: u64,
        /// Why.
        source: io::Error,
    },
    /// The writer thread died.
    #[error("the trace writer thread panicked")]
    WriterPanicked,
}

enum Message {
    Frames(Vec<u8>, u64),
    Flush(Sender<()>),
}

/// Writes events to a trace file from a background thread.
///
/// Each event is encoded into a self-contained frame on the calling thread, so the writer only
/// copies bytes and a crash at any moment leaves a file whose complete records all read back.
pub struct FileRecorder {
    path: PathBuf,
    sender: Mutex<Option<Sender<Message>>>,
    thread: Mutex<Option<JoinHandle<Result<u64, RecorderError>>>>,
}

impl FileRecorder {
    /// Creates `path` (truncating it), writes the header and starts the writer thread.
    pub fn create(path: &Path) -> Result<Self, RecorderError> {
        let file = File::create(path).map_err(|source| RecorderError::Create { path: path.to_path_buf(), source })?;
        let writer = TraceWriter::new(BufWriter::with_capacity(1 << 20, file))
            .map_err(|source| RecorderError::Create { path: path.to_path_buf(), source })?;
        let (tx, rx) = channel::bounded(CHANNEL_CAPACITY);
        let thread_path = path.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("ttsan-trace-writer".into())
            .spawn(move || write_loop(writer, rx, thread_path))
            .map_err(|source| RecorderError::Create { path: path.to_path_buf(), source })?;
        Ok(FileRecorder { path: path.to_path_buf(), sender: Mutex::new(Some(tx)), thread: Mutex::new(Some(thread)) })
    }

    /// The trace path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Waits until everything recorded so far is in the file.
    pub fn flush(&self) {
        let sender = self.sender.lock().clone();
        if let Some(tx) = sender {
            let (done_tx, done_rx) = channel::bounded(1);
            if tx.send(Message::Flush(done_tx)).is_ok() {
                let _ = done_rx.recv();
            }
        }
    }

    /// Flushes, stops the writer and returns the number of records written.
    pub fn finish(&self) -> Result<u64, RecorderError> {
        drop(self.sender.lock().take());
        match self.thread.lock().take() {
            Some(handle) => handle.join().map_err(|_| RecorderError::WriterPanicked)?,
            None => Ok(0),
        }
    }
}

impl Recorder for FileRecorder {
    fn record(&self, event: Event) {
        self.record_all(vec![event]);
    }

    fn record_all(&self, events: Vec<Event>) {
        let mut frames = Vec::with_capacity(64 * events.len());
        let mut scratch = Vec::with_capacity(128);
        for e in &events {
            encode_record(e, &mut scratch, &mut frames);
        }
        let sender = self.sender.lock().clone();
        if let Some(tx) = sender {
            // A send only fails once the writer has stopped after an I/O error, which
            // `finish` reports; dropping the frames here keeps producers from blocking forever.
            let _ = tx.send(Message::Frames(frames, events.len() as u64));
        }
    }
}

impl Drop for FileRecorder {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

fn write_loop(
    mut writer: TraceWriter<BufWriter<File>>,
    rx: Receiver<Message>,
    path: PathBuf,
) -> Result<u64, RecorderError> {
    let fail = |records: u64, source: io::Error| RecorderError::Write { path: path.clone(), records, source };
    loop {
        match rx.recv_timeout(FLUSH_INTERVAL) {
            Ok(Message::Frames(frames, n)) => {
                writer.write_frames(&frames, n).map_err(|e| fail(writer.records(), e))?;
            }
            Ok(Message::Flush(done)) => {
                writer.flush().map_err(|e| fail(writer.records(), e))?;
                let _ = done.send(());
            }
            Err(channel::RecvTimeoutError::Timeout) => writer.flush().map_err(|e| fail(writer.records(), e))?,
            Err(channel::RecvTimeoutError::Disconnected) => break,
        }
    }
    let records = writer.records();
    let mut inner = writer.into_inner().map_err(|e| fail(records, e))?;
    inner.flush().map_err(|e| fail(records, e))?;
    Ok(records)
}
