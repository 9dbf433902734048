//! What ttsan knows about an installed ttnn wheel, shared by the preload shim (which reads it
//! from inside the traced process and links nothing else of ttsan's) and `tt-metal-sys`.
//!
//! A wheel installs `site-packages/ttnn/` (with `build/lib/libtt_metal.so`) beside
//! `site-packages/ttnn-VERSION.dist-info/METADATA`, whose `Version:` header names the release.

use std::path::Path;

/// Every ttnn release whose library ttsan's tests run against in mock mode
/// (`scripts/fetch-ttnn VERSION`): the pin first, then the release before it, whose
/// graph-processor and allocator symbols are the same.
pub const TESTED_RELEASES: &[&str] = &["0.81.1", "0.80.0"];

/// The `Version:` header of a dist-info `METADATA` file.
pub fn metadata_version(metadata: &str) -> Option<String> {
    metadata
        .lines()
        // Headers end at the first blank line; the description below may quote anything.
        .take_while(|l| !l.trim().is_empty())
        .find_map(|l| l.strip_prefix("Version:"))
        .map(|v| v.trim().to_string())
}

/// The version of the ttnn wheel installed in `site_packages` (the directory holding `ttnn/`
/// and `ttnn-*.dist-info/`), if its metadata says.
pub fn installed_version(site_packages: &Path) -> Option<String> {
    std::fs::read_dir(site_packages)
        .ok()?
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("ttnn-") && name.ends_with(".dist-info")
        })
        .find_map(|e| metadata_version(&std::fs::read_to_string(e.path().join("METADATA")).ok()?))
}

/// The version of the wheel that installed `library` (`site-packages/ttnn/build/lib/*.so`).
pub fn version_of_library(library: &Path) -> Option<String> {
    installed_version(library.ancestors().nth(4)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_is_the_metadata_header() {
        assert_eq!(metadata_version("Name: ttnn\nVersion: 0.81.1\n\nVersion: 9\n").as_deref(), Some("0.81.1"));
        assert_eq!(metadata_version("Name: ttnn\n\nVersion: 9\n"), None, "the description is not a header");
    }

    #[test]
    fn a_library_inside_a_wheel_knows_its_release() {
        let site = tempfile::tempdir().unwrap();
        let lib = site.path().join("ttnn/build/lib");
        std::fs::create_dir_all(&lib).unwrap();
        assert_eq!(version_of_library(&lib.join("libtt_metal.so")), None, "no dist-info: a source build");
        let info = site.path().join("ttnn-0.80.0.dist-info");
        std::fs::create_dir_all(&info).unwrap();
        std::fs::write(info.join("METADATA"), "Metadata-Version: 2.1\nName: ttnn\nVersion: 0.80.0\n").unwrap();
        assert_eq!(version_of_library(&lib.join("libtt_metal.so")).as_deref(), Some("0.80.0"));
        assert_eq!(installed_version(site.path()).as_deref(), Some("0.80.0"));
    }
}
