//! Named faults (`--inject NAME`): the corruption classes of the sink-corruption case and its
//! 4x8 suspects, each expressed through the simulator's fault machinery, with the
//! configuration that runs the op they hit.

use super::error::RunError;
use super::module::Module;
use super::options::Mode;
use crate::gpt_oss::device::throughput_prefill;
use std::sync::Arc;
use ttsan_events::{Arch, CoreCoord, Space, Unit};
use ttsan_shim::MemoryRecorder;
use ttsan_sim::ccl::Topology;
use ttsan_sim::{parse_faults, Fault, Mesh, MeshConfig, OpCall};

const RS: &str = "ttnn.experimental.reduce_scatter_minimal_async";
/// A fault the harness stages itself (a buffer placement), not a simulator fault.
const HARNESS: &str = "harness";
/// A fault whose simulator form takes the run's `--skew-seed`.
const SEEDED: &str = "seeded";

/// What a configuration runs, as far as faults care.
#[derive(Debug, Clone)]
pub struct FaultContext<'a> {
    /// Chip architecture.
    pub arch: Arch,
    /// Mesh rows.
    pub rows: u32,
    /// Mesh columns.
    pub cols: u32,
    /// The model's experts (whether they shard over every chip decides the prefill experts).
    pub experts: usize,
    /// The module tests (or the whole model) that run.
    pub modules: &'a [Module],
    /// The phases each module runs.
    pub phases: &'a [Mode],
    /// Whether the experts use `ttnn.all_reduce` (`--fix all-reduce`).
    pub fix_all_reduce: bool,
    /// Seed of the cross-chip skew (`ccl-peer-skew`).
    pub skew_seed: u64,
}

impl FaultContext<'_> {
    fn any(&self, wanted: &[Module]) -> bool {
        self.modules.iter().any(|m| wanted.contains(m))
    }

    fn phase(&self, mode: Mode) -> bool {
        self.phases.contains(&mode)
    }

    /// Whether a prefill MLP runs: the experts, decoder or model module in prefill, or the
    /// whole model's decode run, whose prefill fills the cache.
    fn prefill_mlp(&self) -> bool {
        let module_tests = self.phase(Mode::Prefill) && self.any(&[Module::Experts, Module::Decoder, Module::Model]);
        module_tests || (self.phase(Mode::Decode) && self.any(&[Module::Model]))
    }

    /// Whether a prefill on this mesh runs the throughput experts rather than the low-latency
    /// ones (several rows whose chips divide the experts).
    fn throughput_mesh(&self) -> bool {
        throughput_prefill(self.rows as usize, self.cols as usize, self.experts)
    }

    /// Whether the low-latency prefill experts run: a prefill MLP that is not the throughput
    /// experts'.
    fn prefill_experts(&self) -> bool {
        !self.throughput_mesh() && self.prefill_mlp()
    }

    /// Whether the throughput experts run: a prefill MLP on several rows.
    fn throughput_experts(&self) -> bool {
        self.throughput_mesh() && self.prefill_mlp()
    }

    /// Whether `sparse_matmul` runs: the prefill experts or the decode experts.
    fn sparse_matmul(&self) -> bool {
        self.prefill_experts()
            || (self.phase(Mode::Decode) && self.any(&[Module::Experts, Module::Decoder, Module::Model]))
    }
}

/// A fault by name, with where it applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NamedFault {
    /// `--inject` name.
    pub name: &'static str,
    /// One line: what goes wrong.
    pub what: &'static str,
    /// The simulator faults it stands for (empty: not modelled).
    spec: &'static str,
}

/// The experts' reduce-scatter intermediate, as `experts.rs` names it.
const RS_INTERMEDIATE: &str = "*.experts.tp_allreduce.rs_intermediate";

/// Every named fault.
pub const NAMED_FAULTS: [NamedFault; 9] = [
    NamedFault {
        name: "ccl-stale-scratch",
        what: "cross-chip skew, always late: every peer's writes into the experts' reduce-scatter intermediate land \
               two ops after the call, when the receiver has freed it",
        spec:
            "deferred:op=ttnn.experimental.reduce_scatter_minimal_async,scratch=*.experts.tp_allreduce.rs_intermediate",
    },
    NamedFault {
        name: "ccl-peer-skew",
        what: "cross-chip skew from --skew-seed: per reduce-scatter call one peer's fabric writes into a receiver's \
               intermediate land 0, 1 or 2 ops late, after the receiver freed it",
        spec: SEEDED,
    },
    NamedFault {
        name: "ccl-stale-runtime-arg",
        what: "the reduce-scatter's cached program keeps the intermediate address of its cache miss: cache hits write \
               the freed, reallocated space",
        spec: "stale:op=ttnn.experimental.reduce_scatter_minimal_async",
    },
    NamedFault {
        name: "ccl-pad-overrun",
        what: "all_gather_async writes its tile-padded rows into an unpadded output (one page past the end)",
        spec: "overrun:op=ttnn.experimental.all_gather_async,bytes=2048",
    },
    NamedFault {
        name: "sparse-matmul-oob",
        what: "the experts' sparse_matmul writes one output page past its output",
        spec: "overrun:op=ttnn.sparse_matmul,bytes=2048",
    },
    NamedFault {
        name: "untilize-undersized",
        what: "to_layout (untilize) writes into an output sized for fewer rows than it holds",
        // The throughput experts' untilize of the expert outputs, named `*experts.out_rm`,
        // wherever it falls among the run's other to_layout calls.
        spec: "overrun:op=ttnn.to_layout,bytes=2048,out=*experts.out_rm",
    },
    NamedFault {
        name: "a2a-combine-peer",
        what: "all_to_all_combine writes to a peer chip at an address valid only on the sender",
        spec: "overrun:op=ttnn.all_to_all_combine,bytes=2048",
    },
    NamedFault {
        name: "cb-clash",
        what: "a persistent L1-sharded buffer reaches down into the circular-buffer region of the next program",
        spec: HARNESS,
    },
    NamedFault {
        name: "semaphore-reuse",
        what: "the all-gather signals through the reduce-scatter's ping-pong semaphore set: a write into another \
               collective's semaphore word",
        spec: HARNESS,
    },
];

impl NamedFault {
    /// Looks a name up.
    pub fn by_name(name: &str) -> Option<NamedFault> {
        NAMED_FAULTS.iter().copied().find(|f| f.name == name)
    }

    /// The simulator faults, or why this fault cannot run in `ctx` (naming the configuration
    /// that runs its op).
    pub fn faults(&self, ctx: &FaultContext<'_>) -> Result<Vec<Fault>, RunError> {
        let never = |needs: &str| {
            Err(RunError::Usage(format!("fault {} never runs in this configuration: it runs {needs}", self.name)))
        };
        let runs = match self.name {
            "ccl-stale-runtime-arg" => {
                let attention = ctx.any(&[Module::Attention, Module::Decoder, Module::Model]);
                if !(attention || (ctx.prefill_experts() && !ctx.fix_all_reduce)) {
                    return never(&format!(
                        "in mesh_config.allreduce ({RS} + all_gather_async): the attention, decoder or model module, or \
                         the low-latency prefill experts without --fix all-reduce"
                    ));
                }
                true
            }
            "ccl-stale-scratch" | "ccl-peer-skew" => {
                if !ctx.prefill_experts() || ctx.fix_all_reduce {
                    return never(&format!(
                        "in the low-latency prefill experts' TP all-reduce ({RS} + all_gather_async): the experts, \
                         decoder or model module in prefill, or the model module with decode, on a 1xN mesh (several \
                         rows run the throughput experts when their chips divide the experts), without --fix \
                         all-reduce"
                    ));
                }
                true
            }
            "ccl-pad-overrun" => {
                let attention = ctx.any(&[Module::Attention, Module::Decoder, Module::Model]);
                let experts_rs_ag = ctx.prefill_experts() && !ctx.fix_all_reduce;
                if !(attention || experts_rs_ag) {
                    return never("in mesh_config.allreduce: the attention, decoder or model module");
                }
                true
            }
            "sparse-matmul-oob" => {
                if !ctx.sparse_matmul() {
                    return never(
                        "in the low-latency experts: the experts, decoder or model module in prefill on a 1xN mesh, \
                         or in decode on any mesh (the model module's decode prefills with them on 1xN only)",
                    );
                }
                true
            }
            // Every module's first ops place circular buffers, so the clash always happens.
            "cb-clash" => return Ok(Vec::new()),
            "semaphore-reuse" => {
                let attention = ctx.any(&[Module::Attention, Module::Decoder, Module::Model]);
                if !(attention || (ctx.prefill_experts() && !ctx.fix_all_reduce)) {
                    return never(
                        "in mesh_config.allreduce (all_gather_async): the attention, decoder or model module",
                    );
                }
                return Ok(vec![semaphore_reuse(ctx)?]);
            }
            "untilize-undersized" | "a2a-combine-peer" => {
                if !ctx.throughput_experts() {
                    return never(
                        "in the throughput experts (all_to_all dispatch/combine, to_layout): the experts, decoder or \
                         model module in prefill, or the model module with decode (its prefill), on a mesh with \
                         several rows whose chips divide the experts (e.g. 4x8)",
                    );
                }
                true
            }
            _ => false,
        };
        if runs && self.spec == SEEDED {
            return Ok(vec![Fault::Deferred {
                op: RS.into(),
                scratch: RS_INTERMEDIATE.into(),
                seed: Some(ctx.skew_seed),
            }]);
        }
        if !runs || self.spec.is_empty() || self.spec == HARNESS {
            return Err(RunError::Usage(format!("fault {} is not modelled by the simulator yet", self.name)));
        }
        parse_faults(self.spec).map_err(|e| RunError::Usage(e.to_string()))
    }
}

/// `semaphore-reuse`: the first `all_gather_async` also signals the first word (core (0,0),
/// chip 0) of the reduce-scatter's semaphore set 0 (`ccl.rs0.sem0`), as an all-gather that
/// took the reduce-scatter's ping-pong index would. The word's address comes from the same
/// CCL manager built on a scratch mesh: the run's manager is the first thing it allocates, so
/// the allocator places it identically.
fn semaphore_reuse(ctx: &FaultContext<'_>) -> Result<Fault, RunError> {
    let config = MeshConfig::new(ctx.arch, ctx.rows, ctx.cols);
    let mut mesh = Mesh::new(config, Arc::new(MemoryRecorder::new()))?;
    let mut ccl = crate::gpt_oss::ccl::manager(&mut mesh, Topology::Ring, 1)?;
    let sems = ccl.rs_semaphores();
    let sem =
        sems.first().ok_or_else(|| RunError::Usage("semaphore-reuse: the CCL manager has no semaphores".into()))?;
    Ok(Fault::StrayWrite {
        at: OpCall { op: "ttnn.experimental.all_gather_async".into(), call: 1 },
        device: 0,
        space: Space::L1,
        unit: Unit::Core(CoreCoord::new(0, 0)),
        address: sem.tensor.address(),
        len: 4,
    })
}

/// Whether `injects` names the harness-staged `cb-clash`.
pub fn wants_cb_clash(injects: &[String]) -> bool {
    injects.iter().any(|s| s.trim() == "cb-clash")
}

/// Turns `--inject` values (named faults or the simulator's `stray-write:`, `overrun:`,
/// `stale:`, `deferred:` syntax) into simulator faults.
pub fn resolve(injects: &[String], ctx: &FaultContext<'_>) -> Result<Vec<Fault>, RunError> {
    let mut out = Vec::new();
    for spec in injects {
        match NamedFault::by_name(spec.trim()) {
            Some(named) => out.extend(named.faults(ctx)?),
            None if spec.contains(':') => {
                out.extend(parse_faults(spec).map_err(|e| RunError::Usage(e.to_string()))?);
            }
            None => {
                let names: Vec<&str> = NAMED_FAULTS.iter().map(|f| f.name).collect();
                return Err(RunError::Usage(format!(
                    "unknown fault `{spec}` (named: {}; or stray-write:, overrun:, stale:, deferred:)",
                    names.join(", ")
                )));
            }
        }
    }
    Ok(out)
}
