//! Post-mortem views of a ttsan trace: one self-contained HTML allocation map, and PNG/SVG plots.
//!
//! The HTML page draws an address-by-time map per chip and memory space, with ops along the time
//! axis and the analysis' findings on top. It is a single file with its data embedded, so it opens
//! from disk with no server and no network.
//!
//! Building one takes two passes over nothing: the events stream through a [`MapData`] (which keeps
//! compact columns, not the events) while the same events feed the analysis; then
//! [`write_html`] joins the columns with the [`Analysis`](ttsan_sanitizer::Analysis).
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use ttsan_sanitizer::{AnalysisOptions, Analyzer};
//! let mut reader = ttsan_events::trace::TraceReader::open("run.ttsan")?;
//! let mut map = ttsan_viz::MapData::new();
//! let mut analyzer = Analyzer::new(AnalysisOptions::default());
//! while let Some(event) = reader.next_event()? {
//!     map.feed(&event);
//!     analyzer.feed(&event);
//! }
//! let analysis = analyzer.finish(Some(reader.stats()));
//! let out = std::io::BufWriter::new(std::fs::File::create("map.html")?);
//! ttsan_viz::write_html(&map, &analysis, out)?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod encode;
mod error;
mod html;
mod load;
mod map;
pub mod plot;

// The page's data block, its HTML and the map's columns are internals of `write_html`; what
// other crates need is re-exported here.
pub use encode::split as split_data_block;
pub use error::VizError;
pub use html::{write_html, write_html_file};
pub use load::map_trace_file;
pub use map::MapData;
pub use plot::{write_png, write_svg};
