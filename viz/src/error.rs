//! The one error type of the crate.

use thiserror::Error;

/// Why a page or plot could not be written.
#[derive(Debug, Error)]
pub enum VizError {
    /// Writing the output failed.
    #[error("cannot write output")]
    Io(#[from] std::io::Error),
    /// The embedded data could not be serialised.
    #[error("cannot encode the map data")]
    Encode(#[from] serde_json::Error),
    /// The plotting library failed (drawing or saving the image).
    #[error("cannot draw the plot: {0}")]
    Plot(String),
    /// The trace could not be opened or its header is bad.
    #[error(transparent)]
    Trace(#[from] ttsan_events::trace::TraceError),
    /// Reading the trace failed part-way.
    #[error("cannot read trace: {0}")]
    Read(std::io::Error),
    /// The trace has no `capture_start` record, so there is no geometry to draw against.
    #[error("the trace has no capture_start record: nothing to draw")]
    NoCapture,
}
