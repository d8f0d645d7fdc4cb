//! A record-batch stream that counts what it delivered and reports once, when
//! it finishes, fails or is dropped (a client that disconnects cancels the work
//! by dropping the stream; the report then says `cancelled`).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use futures::Stream;

/// How an observed stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamOutcome {
    /// Every batch was delivered.
    Complete,
    /// The stream failed; the message is for logs only.
    Failed(String),
    /// The consumer went away before the end.
    Cancelled,
}

impl StreamOutcome {
    /// A short label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            StreamOutcome::Complete => "ok",
            StreamOutcome::Failed(_) => "error",
            StreamOutcome::Cancelled => "cancelled",
        }
    }
}

/// Totals reported by an [`ObservedStream`].
#[derive(Debug, Clone)]
pub struct StreamReport {
    /// Rows delivered.
    pub rows: u64,
    /// Bytes delivered (Arrow memory size of the delivered batches).
    pub bytes: u64,
    /// Time from creation to the end of the stream.
    pub duration: Duration,
    /// How it ended.
    pub outcome: StreamOutcome,
}

type Reporter = Box<dyn FnOnce(StreamReport) + Send>;

/// Wraps a stream, counting rows and bytes; calls the reporter exactly once.
pub struct ObservedStream {
    inner: SendableRecordBatchStream,
    rows: u64,
    bytes: u64,
    started: Instant,
    reporter: Option<Reporter>,
}

impl ObservedStream {
    /// Observes `inner`; `reporter` runs once at the end (or on drop).
    pub fn new(inner: SendableRecordBatchStream, reporter: impl FnOnce(StreamReport) + Send + 'static) -> Self {
        Self { inner, rows: 0, bytes: 0, started: Instant::now(), reporter: Some(Box::new(reporter)) }
    }

    fn finish(&mut self, outcome: StreamOutcome) {
        if let Some(reporter) = self.reporter.take() {
            reporter(StreamReport { rows: self.rows, bytes: self.bytes, duration: self.started.elapsed(), outcome });
        }
    }
}

/// The bytes of data `batch` holds: its columns' buffers as sliced, not the
/// capacity of buffers it shares with others (a 1-row result of a filtered
/// page would otherwise count the whole page); about its Arrow IPC size.
pub fn batch_data_bytes(batch: &RecordBatch) -> u64 {
    batch.columns().iter().map(|c| c.to_data().get_slice_memory_size().unwrap_or(0) as u64).sum()
}

impl Stream for ObservedStream {
    type Item = Result<RecordBatch, DataFusionError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match this.inner.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(batch))) => {
                this.rows += batch.num_rows() as u64;
                this.bytes += batch_data_bytes(&batch);
                Poll::Ready(Some(Ok(batch)))
            }
            Poll::Ready(Some(Err(error))) => {
                this.finish(StreamOutcome::Failed(error.to_string()));
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(None) => {
                this.finish(StreamOutcome::Complete);
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl RecordBatchStream for ObservedStream {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

impl Drop for ObservedStream {
    fn drop(&mut self) {
        self.finish(StreamOutcome::Cancelled);
    }
}
