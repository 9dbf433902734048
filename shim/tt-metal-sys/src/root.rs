//! The runtime root: where the unpacked ttnn wheel lives, and which version it is.

use crate::error::TtError;
use std::path::{Path, PathBuf};

/// The only ttnn version whose C++ layouts `cpp/glue.cpp` declares.
pub const SUPPORTED_VERSION: &str = "0.81.1";
/// Every ttnn release whose library ttsan's tests run in mock mode (`scripts/fetch-ttnn VERSION`):
/// the pin and the release before it, whose graph-processor and allocator symbols are the same.
pub const SUPPORTED_VERSIONS: &[&str] = ttnn_wheel::TESTED_RELEASES;

/// Environment variable naming the runtime root (the directory holding `ttnn/` and `ttnn.libs/`).
pub const ROOT_ENV: &str = "TTSAN_TTNN_ROOT";

/// The unpacked wheel: `<root>/ttnn/build/lib/libtt_metal.so` and friends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeRoot {
    root: PathBuf,
}

impl RuntimeRoot {
    /// Where `scripts/fetch-ttnn` puts the wheel by default: `<repo>/target/ttnn/root`.
    pub fn default_path() -> PathBuf {
        // The workspace root is two levels above this crate; the default does not follow
        // CARGO_TARGET_DIR because fetch-ttnn never does either.
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/ttnn/root")
    }

    /// The root to use: `explicit` if given, else `$TTSAN_TTNN_ROOT`, else [`Self::default_path`].
    pub fn locate(explicit: Option<&Path>) -> RuntimeRoot {
        let root = match explicit {
            Some(p) => p.to_path_buf(),
            None => match std::env::var_os(ROOT_ENV) {
                Some(v) if !v.is_empty() => PathBuf::from(v),
                _ => Self::default_path(),
            },
        };
        // Absolute so that later chdirs (tt-metal writes into the cwd) cannot change its meaning.
        let root = std::path::absolute(&root).unwrap_or(root);
        RuntimeRoot { root }
    }

    /// The root directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// `<root>/ttnn`, which tt-metal calls `TT_METAL_RUNTIME_ROOT`.
    pub fn runtime_dir(&self) -> PathBuf {
        self.root.join("ttnn")
    }

    /// `libtt_metal.so`.
    pub fn metal_lib(&self) -> PathBuf {
        self.root.join("ttnn/build/lib/libtt_metal.so")
    }

    /// `_ttnncpp.so` (mesh opening and graph capture live there).
    pub fn ttnn_lib(&self) -> PathBuf {
        self.root.join("ttnn/build/lib/_ttnncpp.so")
    }

    /// Whether the libraries are present at all (a cheap probe for "skip or run").
    pub fn is_present(&self) -> bool {
        self.metal_lib().is_file() && self.ttnn_lib().is_file()
    }

    /// The ttnn version recorded in the wheel's dist-info.
    pub fn version(&self) -> Result<String, TtError> {
        if !self.root.is_dir() {
            return Err(TtError::NotFound(self.metal_lib()));
        }
        ttnn_wheel::installed_version(&self.root).ok_or_else(|| TtError::UnknownVersion(self.root.clone()))
    }

    /// Checks that the libraries exist and are the supported version.
    pub fn check(&self) -> Result<(), TtError> {
        if !self.is_present() {
            return Err(TtError::NotFound(self.root.clone()));
        }
        let found = self.version()?;
        if !SUPPORTED_VERSIONS.contains(&found.as_str()) {
            return Err(TtError::WrongVersion { root: self.root.clone(), found, expected: "0.81.1 or 0.80.0" });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_missing_and_wrong_versions() {
        let dir = tempfile::tempdir().unwrap();
        let root = RuntimeRoot::locate(Some(dir.path()));
        assert!(matches!(root.check(), Err(TtError::NotFound(_))));

        let lib = dir.path().join("ttnn/build/lib");
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::write(lib.join("libtt_metal.so"), b"").unwrap();
        std::fs::write(lib.join("_ttnncpp.so"), b"").unwrap();
        assert!(matches!(root.check(), Err(TtError::UnknownVersion(_))));

        let info = dir.path().join("ttnn-0.79.0.dist-info");
        std::fs::create_dir_all(&info).unwrap();
        std::fs::write(info.join("METADATA"), "Name: ttnn\nVersion: 0.79.0\n").unwrap();
        let err = root.check().unwrap_err();
        assert!(matches!(&err, TtError::WrongVersion { found, .. } if found == "0.79.0"), "{err}");

        std::fs::write(info.join("METADATA"), "Name: ttnn\nVersion: 0.81.1\n").unwrap();
        root.check().unwrap();
    }
}
