//! Reports: the machine-readable [`Report`] and its text rendering.

mod json;
mod text;

pub use json::{Report, ReportCapture, Status, REPORT_VERSION};
pub use text::{render_text, TextOptions};
