//! The status file's lines: one per event in a shim instance's life, appended by every process
//! the shim is loaded into, so that the wrapper can tell a shim that never loaded from a program that
//! never used tt-metal, and both from a shim that failed after tt-metal showed up.

/// Tag of the line written when the shim is loaded into a process.
pub const STATUS_LOADED: &str = "loaded";
/// Tag of the line written when a process first calls into tt-metal's allocator.
pub const STATUS_TT_METAL: &str = "tt-metal";
/// Tag of the line written when the shim could not record (message follows).
pub const STATUS_ERROR: &str = "error";
/// Tag of the line written when the loaded tt-metal build cannot be checked (reason follows).
pub const STATUS_UNSUPPORTED: &str = "unsupported";

/// One parsed status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusLine {
    /// The shim was loaded into process `pid`.
    Loaded {
        /// Process id.
        pid: u32,
    },
    /// Process `pid` called tt-metal's allocator; its trace is `trace`.
    TtMetal {
        /// Process id.
        pid: u32,
        /// The trace file it writes.
        trace: String,
    },
    /// The loaded tt-metal build cannot be checked by the shim in process `pid`.
    Unsupported {
        /// Process id.
        pid: u32,
        /// Why.
        message: String,
    },
    /// The shim in process `pid` could not record.
    Error {
        /// Process id.
        pid: u32,
        /// Why.
        message: String,
    },
}

impl StatusLine {
    /// Parses one line; `None` for anything malformed (a torn line of a killed process).
    pub fn parse(line: &str) -> Option<StatusLine> {
        let mut parts = line.splitn(3, ' ');
        let tag = parts.next()?;
        let pid = parts.next()?.parse().ok()?;
        let rest = parts.next().unwrap_or("").to_string();
        match tag {
            STATUS_LOADED => Some(StatusLine::Loaded { pid }),
            STATUS_TT_METAL => Some(StatusLine::TtMetal { pid, trace: rest }),
            STATUS_ERROR => Some(StatusLine::Error { pid, message: rest }),
            STATUS_UNSUPPORTED => Some(StatusLine::Unsupported { pid, message: rest }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        assert_eq!(StatusLine::parse("loaded 12 /bin/true"), Some(StatusLine::Loaded { pid: 12 }));
        assert_eq!(
            StatusLine::parse("tt-metal 7 /tmp/t.ttsan"),
            Some(StatusLine::TtMetal { pid: 7, trace: "/tmp/t.ttsan".into() })
        );
        assert_eq!(
            StatusLine::parse("error 7 cannot open x: denied"),
            Some(StatusLine::Error { pid: 7, message: "cannot open x: denied".into() })
        );
        assert_eq!(StatusLine::parse("loaded"), None);
        assert_eq!(StatusLine::parse("other 1 x"), None);
    }
}
