//! Global semaphores and the CCL manager that hands out ping-pong sets of them.

use super::Topology;
use crate::dtype::DType;
use crate::error::SimResult;
use crate::host::HostTensor;
use crate::mesh::Mesh;
use crate::tensor::{Distribution, MemoryConfig, Tensor, TensorSpec};
use ttsan_events::{CoreRange, Role};

/// A global semaphore: one 4-byte L1 word per core, a HEIGHT_SHARDED L1 buffer at the same
/// address on every core and chip (`ttnn.create_global_semaphore`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalSemaphore {
    /// The buffer.
    pub tensor: Tensor,
    /// The cores holding a word.
    pub cores: CoreRange,
}

impl GlobalSemaphore {
    /// The spec of a semaphore buffer over `cores`.
    pub(crate) fn spec(cores: CoreRange) -> TensorSpec {
        let n = cores.cores().count();
        TensorSpec::new(&[n, 1], DType::U32).row_major().memory(MemoryConfig::L1HeightSharded { cores })
    }
}

impl Mesh {
    /// `ttnn.create_global_semaphore(mesh, cores, initial_value)`.
    pub fn create_global_semaphore(
        &mut self,
        cores: CoreRange,
        initial: u32,
        name: &str,
    ) -> SimResult<GlobalSemaphore> {
        let spec = GlobalSemaphore::spec(cores);
        let n = spec.shape[0];
        let init = HostTensor::from_fn(&[n, 1], |_| initial as f32);
        let tensor = self.from_host(&init, &spec, &Distribution::Replicate, name, Role::Semaphore)?;
        Ok(GlobalSemaphore { tensor, cores })
    }
}

/// GPT-OSS's `tt/ccl.py` manager: 2 x 3 reduce-scatter semaphores, 2 x 2 all-gather
/// semaphores and 2 barrier semaphores, handed out alternately (ping-pong).
#[derive(Debug, Clone)]
pub struct CclManager {
    rs: [Vec<GlobalSemaphore>; 2],
    ag: [Vec<GlobalSemaphore>; 2],
    barrier: [GlobalSemaphore; 2],
    rs_next: usize,
    ag_next: usize,
    barrier_next: usize,
    /// Topology the model's collectives use.
    pub topology: Topology,
    /// Links per collective.
    pub num_links: u32,
}

impl CclManager {
    /// Creates all semaphores on `cores` (a model picks them: GPT-OSS's are
    /// `ttsan_models::gpt_oss::ccl::cores`).
    pub fn new(mesh: &mut Mesh, cores: CoreRange, topology: Topology, num_links: u32) -> SimResult<Self> {
        let mut make = |name: String| mesh.create_global_semaphore(cores, 0, &name);
        let mut set = |prefix: &str, i: usize, n: usize| -> SimResult<Vec<GlobalSemaphore>> {
            (0..n).map(|j| make(format!("ccl.{prefix}{i}.sem{j}"))).collect()
        };
        let rs = [set("rs", 0, 3)?, set("rs", 1, 3)?];
        let ag = [set("ag", 0, 2)?, set("ag", 1, 2)?];
        let b0 = set("barrier", 0, 1)?.remove(0);
        let b1 = set("barrier", 1, 1)?.remove(0);
        Ok(CclManager { rs, ag, barrier: [b0, b1], rs_next: 0, ag_next: 0, barrier_next: 0, topology, num_links })
    }

    /// The current reduce-scatter set of 3; flips to the other set for the next call.
    pub fn rs_semaphores(&mut self) -> Vec<GlobalSemaphore> {
        let s = self.rs[self.rs_next].clone();
        self.rs_next ^= 1;
        s
    }

    /// The current all-gather set of 2; flips.
    pub fn ag_semaphores(&mut self) -> Vec<GlobalSemaphore> {
        let s = self.ag[self.ag_next].clone();
        self.ag_next ^= 1;
        s
    }

    /// The current barrier semaphore; alternates.
    pub fn barrier_semaphore(&mut self) -> GlobalSemaphore {
        let s = self.barrier[self.barrier_next].clone();
        self.barrier_next ^= 1;
        s
    }
}
