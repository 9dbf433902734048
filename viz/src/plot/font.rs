//! The one font the plots use, embedded from a crate so no system font library is needed.

use std::sync::OnceLock;

/// The family name the charts ask for.
pub const FAMILY: &str = "sans-serif";

/// Registers the embedded font with plotters (once per process); `false` if it could not be
/// parsed, in which case the caller draws without text.
pub fn ensure() -> bool {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FAMILY, plotters::style::FontStyle::Normal, epaint_default_fonts::UBUNTU_LIGHT)
            .is_ok()
    })
}
