//! Runs a request script through the allocator model, the way `ttsan tt-metal replay` runs
//! it through the real library.

use super::allocator::{AllocRequest, Allocator};
use super::config::AllocatorConfig;
use super::error::AllocError;
use super::script::{Request, Response};
use std::collections::HashMap;
use thiserror::Error;
use ttsan_events::{Arch, Space};

/// A script the model cannot run.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ReplayError {
    /// The mesh cannot be configured.
    #[error("cannot configure the allocator model: {0}")]
    Config(#[from] AllocError),
    /// A free names an id that holds no buffer (never allocated, refused, or already freed).
    #[error("request {}: free of unknown id `{id}`", index + 1)]
    UnknownId {
        /// 0-based request index (messages count from 1, like script readers do).
        index: usize,
        /// The id.
        id: String,
    },
    /// An allocation reuses an id that still holds a buffer.
    #[error("request {}: id `{id}` is already allocated", index + 1)]
    DuplicateId {
        /// 0-based request index (messages count from 1, like script readers do).
        index: usize,
        /// The id.
        id: String,
    },
}

/// Runs `requests` on a fresh model of a `chips`-chip mock mesh of `arch` (the configuration
/// `AllocatorConfig::mock` describes) and answers each request. Refused allocations answer
/// `OOM`, whatever the reason, as the real replay does.
pub fn run_model(requests: &[Request], arch: Arch, chips: u32) -> Result<Vec<Response>, ReplayError> {
    let mut alloc = Allocator::new(AllocatorConfig::mock(arch, chips)?);
    let mut live: HashMap<&str, (Space, u64)> = HashMap::new();
    let mut out = Vec::with_capacity(requests.len());
    for (index, req) in requests.iter().enumerate() {
        match req {
            Request::Alloc { id, space, size, page_size } => {
                if live.contains_key(id.as_str()) {
                    return Err(ReplayError::DuplicateId { index, id: id.clone() });
                }
                match alloc.allocate(&AllocRequest::interleaved(*space, *size, *page_size)) {
                    Ok(address) => {
                        live.insert(id, (*space, address));
                        out.push(Response::Address(id.clone(), address));
                    }
                    Err(_) => out.push(Response::Oom(id.clone())),
                }
            }
            Request::Free { id } => {
                let (space, address) =
                    live.remove(id.as_str()).ok_or_else(|| ReplayError::UnknownId { index, id: id.clone() })?;
                alloc.deallocate(space, address);
                out.push(Response::Freed(id.clone()));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::parse;

    #[test]
    fn answers_each_request() {
        let reqs = parse("a x dram 131072 2048\na y l1 32768 2048\na z l1_small 2048 2048\nf x\na w dram 2048 2048\n")
            .unwrap();
        let got = run_model(&reqs, Arch::WormholeB0, 1).unwrap();
        let text: Vec<String> = got.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["x 1048640", "y 1497088", "z OOM", "x FREED", "w 1048640"]);
    }

    #[test]
    fn freeing_an_unknown_id_names_it() {
        let reqs = parse("a x dram 2048 2048\nf y\n").unwrap();
        let e = run_model(&reqs, Arch::Blackhole, 1).unwrap_err();
        assert_eq!(e, ReplayError::UnknownId { index: 1, id: "y".into() });
        assert_eq!(e.to_string(), "request 2: free of unknown id `y`");
        // A refused allocation leaves nothing to free either.
        let reqs = parse("a big dram 1099511627776 1048576\nf big\n").unwrap();
        assert!(matches!(run_model(&reqs, Arch::Blackhole, 1), Err(ReplayError::UnknownId { index: 1, .. })));
    }

    #[test]
    fn reusing_a_live_id_is_an_error_but_a_freed_one_is_not() {
        let reqs = parse("a x dram 2048 2048\nf x\na x dram 2048 2048\na x dram 2048 2048\n").unwrap();
        assert_eq!(run_model(&reqs, Arch::WormholeB0, 8), Err(ReplayError::DuplicateId { index: 3, id: "x".into() }));
    }

    #[test]
    fn unknown_mesh_is_a_config_error() {
        assert!(matches!(run_model(&[], Arch::WormholeB0, 5), Err(ReplayError::Config(_))));
    }
}
