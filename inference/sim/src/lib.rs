//! The embedded simulated Tenstorrent mesh.
//!
//! A [`Mesh`] is R x C Wormhole B0 or Blackhole chips whose DRAM banks and L1 are held
//! sparsely, one allocator model for the whole mesh (so a mesh buffer has the same address on
//! every chip), and ttnn ops that run their kernels on the CPU through the buffers' real page
//! mappings. Everything the mesh does is reported through a [`ttsan_shim::Recorder`] as
//! ttsan events, so the sanitizer can analyse a simulated run exactly as a captured one.
//!
//! ```no_run
//! use std::sync::Arc;
//! use ttsan_sim::{ops, DType, Distribution, HostTensor, Mesh, MeshConfig, TensorSpec};
//! use ttsan_shim::{events::{Arch, Role}, MemoryRecorder};
//!
//! let rec = Arc::new(MemoryRecorder::new());
//! let mut mesh = Mesh::new(MeshConfig::new(Arch::WormholeB0, 1, 8), rec.clone())?;
//! let spec = TensorSpec::new(&[1, 1, 32, 64], DType::Bf16);
//! let x = mesh.from_host(&HostTensor::zeros(&[1, 1, 32, 64]), &spec, &Distribution::Replicate, "x", Role::Activation)?;
//! let y = ops::silu(&mut mesh, &x, &ops::Out::dram())?;
//! let values = mesh.to_host(&y)?;
//! mesh.finish()?;
//! # Ok::<(), ttsan_sim::SimError>(())
//! ```

#![deny(missing_docs)]

mod cache;
mod canary;
pub mod ccl;
mod chip;
mod config;
mod dtype;
mod error;
mod fault;
mod guard;
mod host;
mod host_io;
mod memory;
mod mesh;
mod op;
pub mod ops;
mod pages;
mod placement;
mod tensor;
mod write_log;

pub use canary::{CANARY_PAGE, PAST_END_BYTES};
pub use chip::Chip;
pub use config::{Canaries, DetectMode, GuardSelect, MeshConfig, UnknownCanary, UnknownDetectMode};
pub use dtype::{DType, PageLayout};
pub use error::{SimError, SimResult};
pub use fault::{parse_faults, Fault, FaultParseError, OpCall};
pub use guard::{digest_on_chips, digest_pages, page_digest, DigestJob};
pub use host::{norm_dim, strides, HostTensor};
pub use memory::{ChipMemory, CHUNK};
pub use mesh::{Mesh, RunStats, PRODUCER};
pub use op::{CbRequest, OpRun};
pub use pages::{PageFormat, TILE};
pub use placement::Placement;
pub use tensor::{Distribution, MemoryConfig, Tensor, TensorSpec};
pub use write_log::WriteLog;
