//! One pass over a trace file that feeds both the analysis and the map.

use crate::{MapData, VizError};
use std::path::Path;
use ttsan_events::trace::TraceReader;
use ttsan_sanitizer::{Analysis, AnalysisOptions, Analyzer};

/// Reads the trace at `path` once, streaming, and returns its map and its analysis.
///
/// This is what `ttsan report` does; a command that also wants the page (`ttsan analyze --html`)
/// can call it instead of `ttsan_sanitizer::analyze_file` and get the same analysis.
pub fn map_trace_file(path: &Path, options: AnalysisOptions) -> Result<(MapData, Analysis), VizError> {
    let mut reader = TraceReader::open(path)?;
    let mut map = MapData::new();
    let mut analyzer = Analyzer::new(options);
    while let Some(event) = reader.next_event().map_err(VizError::Read)? {
        map.feed(&event);
        analyzer.feed(&event);
    }
    Ok((map, analyzer.finish(Some(reader.stats()))))
}
