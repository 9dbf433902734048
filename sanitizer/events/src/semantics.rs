//! What an op does beyond the buffers it declares, as data: whether it is a collective,
//! whether it writes into other chips' memory over the fabric, and whether its writes can
//! still land after it ended on the chip they land on.
//!
//! Two tables: the simulator's op definitions (names as ttnn's Python API spells them) and
//! the names real runs record (tt-metal's graph tracker: the registered op name, e.g.
//! `ttnn::experimental::reduce_scatter_minimal_async`, and the device operation's type name,
//! e.g. `ReduceScatterMinimalAsyncDeviceOperation`). A name in neither is a local op. No name
//! is matched by substring: under fast dispatch every op is asynchronous to the host, so
//! `async` in a name says nothing about when the op's writes land.

/// The semantics of one op name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpSemantics {
    /// A collective over several chips.
    pub collective: bool,
    /// It writes into peer chips' memory over the fabric.
    pub fabric_writes: bool,
    /// Some of its writes can land after it ended on the receiving chip: a peer's fabric
    /// writes are not ordered with the receiver's later ops.
    pub writes_after_end: bool,
}

/// An op that reads and writes its own chip's memory only.
pub const LOCAL: OpSemantics = OpSemantics { collective: false, fabric_writes: false, writes_after_end: false };

/// A collective whose kernels write into peers' buffers over the fabric.
pub const FABRIC_COLLECTIVE: OpSemantics =
    OpSemantics { collective: true, fabric_writes: true, writes_after_end: true };

/// The simulator's op definitions that are not [`LOCAL`]. `ttnn.mesh_partition` is a
/// collective by name only: each chip keeps its own slice, nothing crosses the fabric.
pub const SIMULATOR_OPS: &[(&str, OpSemantics)] = &[
    ("ttnn.all_gather", FABRIC_COLLECTIVE),
    ("ttnn.experimental.all_gather_async", FABRIC_COLLECTIVE),
    ("ttnn.reduce_scatter", FABRIC_COLLECTIVE),
    ("ttnn.experimental.reduce_scatter_minimal_async", FABRIC_COLLECTIVE),
    ("ttnn.all_reduce", FABRIC_COLLECTIVE),
    ("ttnn.all_to_all_dispatch", FABRIC_COLLECTIVE),
    ("ttnn.all_to_all_combine", FABRIC_COLLECTIVE),
];

/// Names real runs record for the same ops: the names tt-metal registers
/// (`ttnn::register_operation<"...">`) and its device operations' type names.
pub const REAL_RUN_OPS: &[(&str, OpSemantics)] = &[
    ("ttnn::experimental::reduce_scatter_minimal_async", FABRIC_COLLECTIVE),
    ("ReduceScatterMinimalAsyncDeviceOperation", FABRIC_COLLECTIVE),
    ("ttnn::experimental::all_gather_async", FABRIC_COLLECTIVE),
    ("AllGatherAsyncDeviceOperation", FABRIC_COLLECTIVE),
    ("ttnn::all_reduce", FABRIC_COLLECTIVE),
    ("ttnn::all_to_all_combine", FABRIC_COLLECTIVE),
    ("AllToAllCombineDeviceOperation", FABRIC_COLLECTIVE),
    ("AllToAllDispatchDeviceOperation", FABRIC_COLLECTIVE),
];

/// The semantics of `name`: from the tables (exact names, or a device operation's type name
/// after a namespace, `ttnn::experimental::prim::ReduceScatterMinimalAsyncDeviceOperation`),
/// [`LOCAL`] otherwise.
pub fn op_semantics(name: &str) -> OpSemantics {
    let tail = name.rsplit("::").next().unwrap_or(name);
    SIMULATOR_OPS
        .iter()
        .chain(REAL_RUN_OPS)
        .find(|(n, _)| *n == name || (n.ends_with("DeviceOperation") && *n == tail))
        .map_or(LOCAL, |(_, s)| *s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_not_substrings_decide() {
        assert!(op_semantics("ttnn.experimental.reduce_scatter_minimal_async").writes_after_end);
        assert!(op_semantics("ttnn::experimental::prim::ReduceScatterMinimalAsyncDeviceOperation").fabric_writes);
        assert!(op_semantics("ttnn.all_reduce").collective, "synchronous by name, still a fabric collective");
        assert_eq!(op_semantics("ttnn.mesh_partition"), LOCAL);
        assert_eq!(op_semantics("my_async_matmul"), LOCAL, "`async` in a name is no declaration");
    }
}
