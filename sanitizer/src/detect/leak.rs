//! Buffers alive at the end of the trace (opt-in: weights are meant to live forever).

use super::Context;
use crate::attribution;
use crate::finding::{BufferRef, Culprit, Finding, FindingKind};

/// One finding per live buffer (not circular buffers), allocating op as culprit.
pub fn check(ctx: &Context<'_>) -> Vec<Finding> {
    let label = |i: u64| attribution::op_label(ctx.ops, i);
    let mut live: Vec<_> = ctx.registry.live_buffers().filter(|b| !b.is_cb()).collect();
    live.sort_by_key(|b| b.id);
    live.into_iter()
        .map(|b| {
            let per_unit = ctx.registry.footprint_of(b.id).map(|f| f.max_len()).unwrap_or(0);
            let mut f = Finding::at(FindingKind::Leak, b.device, b.space, None, b.address, b.size);
            let op = b.alloc_op.and_then(|i| ctx.ops.get(i));
            f.culprit = op.map(Culprit::of);
            f.mechanism = format!(
                "'{}' ({} bytes, {}) allocated by {} is still alive at the end of the trace",
                b.display_name(),
                b.size,
                b.role,
                b.alloc_op.map(label).unwrap_or_else(|| "the host".into())
            );
            f.victim = Some(BufferRef::new(b, per_unit, label));
            f
        })
        .collect()
}
