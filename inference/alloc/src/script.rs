//! The allocation request script shared by `ttsan tt-metal replay` (real library) and
//! `ttsan tt-metal replay --model` (our allocator model).
//!
//! One request a line: `a ID SPACE SIZE PAGE` (SPACE is `dram`, `l1` or `l1_small`; sizes in
//! bytes) or `f ID`. Blank lines and lines starting with `#` are ignored. The answer is one line
//! a request: `ID ADDRESS` (decimal bank-local address), `ID OOM` or `ID FREED`.

use std::fmt;
use thiserror::Error;
use ttsan_events::Space;

/// One request of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Allocate an interleaved buffer.
    Alloc {
        /// Caller's id for the buffer.
        id: String,
        /// Memory space.
        space: Space,
        /// Total bytes.
        size: u64,
        /// Page size in bytes.
        page_size: u64,
    },
    /// Free the buffer allocated under `id`.
    Free {
        /// The id given at allocation.
        id: String,
    },
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Allocated at this bank-local address.
    Address(String, u64),
    /// The allocator refused (out of memory or any other allocation failure).
    Oom(String),
    /// Freed.
    Freed(String),
}

impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Response::Address(id, addr) => write!(f, "{id} {addr}"),
            Response::Oom(id) => write!(f, "{id} OOM"),
            Response::Freed(id) => write!(f, "{id} FREED"),
        }
    }
}

/// A script line that cannot be understood.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("script line {line}: {reason}")]
pub struct ScriptError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

/// Parses a whole script.
pub fn parse(text: &str) -> Result<Vec<Request>, ScriptError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |reason: String| ScriptError { line: i + 1, reason };
        let fields: Vec<&str> = line.split_whitespace().collect();
        match fields.as_slice() {
            ["a", id, space, size, page] => {
                let space = match *space {
                    "dram" => Space::Dram,
                    "l1" => Space::L1,
                    "l1_small" => Space::L1Small,
                    other => return Err(err(format!("unknown space `{other}` (dram, l1 or l1_small)"))),
                };
                let size = size.parse::<u64>().map_err(|_| err(format!("size `{size}` is not a byte count")))?;
                let page_size =
                    page.parse::<u64>().map_err(|_| err(format!("page size `{page}` is not a byte count")))?;
                if page_size == 0 {
                    return Err(err("page size must be positive".into()));
                }
                out.push(Request::Alloc { id: (*id).to_string(), space, size, page_size });
            }
            ["f", id] => out.push(Request::Free { id: (*id).to_string() }),
            _ => return Err(err(format!("expected `a ID SPACE SIZE PAGE` or `f ID`, got `{line}`"))),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_requests_and_rejects_garbage() {
        let reqs = parse("# c\na x dram 4096 2048\n\nf x\n").unwrap();
        assert_eq!(
            reqs,
            vec![
                Request::Alloc { id: "x".into(), space: Space::Dram, size: 4096, page_size: 2048 },
                Request::Free { id: "x".into() }
            ]
        );
        assert_eq!(parse("a x hbm 1 1").unwrap_err().line, 1);
        assert!(parse("a x dram 1 0").is_err());
        assert!(parse("z").is_err());
    }
}
