//! Bad frees.

use super::Context;
use crate::attribution;
use crate::finding::{BufferRef, Culprit, Finding, FindingKind};
use crate::registry::FreeOutcome;
use ttsan_events::{BufferFree, Space};

/// A finding for a free that was not of a live allocation.
pub fn check(ctx: &Context<'_>, free: &BufferFree, outcome: &FreeOutcome) -> Option<Finding> {
    let label = |i: u64| attribution::op_label(ctx.ops, i);
    let op = free.op.and_then(|i| ctx.ops.get(i));
    let by = op.map(|o| format!("op {}", o.label())).unwrap_or_else(|| "the host".into());
    let mut f = match outcome {
        FreeOutcome::Freed(_) => return None,
        FreeOutcome::DoubleFree(earlier) => {
            let (space, address, device) =
                earlier.as_ref().map(|b| (b.space, b.address, b.device)).unwrap_or((Space::Dram, 0, None));
            let mut f = Finding::at(FindingKind::DoubleFree, device, space, None, address, 0);
            f.mechanism = match earlier {
                Some(b) => format!(
                    "{by} freed '{}' (id {}), already freed by {}",
                    b.display_name(),
                    b.id,
                    b.free_op.map(label).unwrap_or_else(|| "the host".into())
                ),
                None => format!("{by} freed buffer id {} a second time", free.id),
            };
            f.victim = earlier.as_ref().map(|b| BufferRef::new(b, 0, label));
            f
        }
        FreeOutcome::Unknown => {
            let mut f = Finding::at(FindingKind::UnknownFree, None, Space::Dram, None, 0, 0);
            f.mechanism = format!("{by} freed buffer id {}, which was never allocated in this trace", free.id);
            f
        }
    };
    f.culprit = op.map(Culprit::of);
    Some(f)
}
