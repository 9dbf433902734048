//! GPT-OSS's CCL manager (`models/demos/gpt_oss/tt/ccl.py`): the ping-pong global semaphores
//! its async collectives take, on the cores the model picks for them.

use ttsan_events::CoreCoord;
use ttsan_events::CoreRange;
use ttsan_sim::ccl::{CclManager, Topology};
use ttsan_sim::{Mesh, SimResult};

/// GPT-OSS's manager on `mesh`, on the [`cores`] it picks.
pub fn manager(mesh: &mut Mesh, topology: Topology, num_links: u32) -> SimResult<CclManager> {
    let cores = cores(mesh);
    CclManager::new(mesh, cores, topology, num_links)
}

/// The CCL core range of GPT-OSS's manager on `mesh`: tt-metal's (0,0)-(7,7) rectangle clipped
/// to the chip's compute grid.
///
/// `tt/ccl.py` hard-codes (0,0)-(7,7), which fits the 8x9 grid of a Galaxy (32 chips,
/// dispatch on ethernet cores) unchanged. A T3K / n300 chip (the 1x8 mesh) keeps a worker row
/// for dispatch and has an 8x7 compute grid, so row 7 does not exist there and the rectangle
/// becomes (0,0)-(7,6), the whole grid, which is what tt-metal's T3K demos take
/// (`models/demos/t3000/mixtral8x7b/tt/mixtral_ccl.py` and `falcon40b/tt/falcon_ccl.py` span
/// `compute_with_storage_grid_size()`). A Blackhole grid (11x10 or more) also
/// holds (0,0)-(7,7) unchanged.
pub fn cores(mesh: &Mesh) -> CoreRange {
    let grid = mesh.compute_grid();
    let end = CoreCoord::new(grid.end.x.min(7), grid.end.y.min(7));
    CoreRange::new(CoreCoord::new(0, 0), end)
}
