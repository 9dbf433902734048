//! `mesh_config.allreduce`: the TP all-reduce of attention, as reduce-scatter plus all-gather
//! (`reduce_scatter_minimal_async` then `all_gather_async`, both on mesh axis 1, ping-pong
//! semaphores from the CCL manager). This is the pair the sink-corruption case implicates.

use ttsan_sim::ccl::{self, AllGatherAsync, CclArgs, CclManager, ReduceScatterAsync};
use ttsan_sim::ops::Out;
use ttsan_sim::{Mesh, SimResult, Tensor};

/// Sums `x` over the chips of each mesh row (TP group) along the last dim and returns the
/// full result on every chip. Deallocates the reduce-scatter output after the gather, as the
/// newer demo does to bound peak DRAM. The reduce-scatter's cached intermediate is named
/// `<name>.rs_intermediate`, so a trace tells the call sites' scratch buffers apart.
pub fn allreduce(mesh: &mut Mesh, ccl_manager: &mut CclManager, x: &Tensor, name: &str) -> SimResult<Tensor> {
    let topology = ccl_manager.topology;
    let num_links = ccl_manager.num_links;
    let args = |suffix: &str| CclArgs {
        cluster_axis: Some(1),
        topology,
        num_links,
        out: Out::dram().named(&format!("{name}.{suffix}")),
    };
    let rs_extra = ReduceScatterAsync {
        semaphores: ccl_manager.rs_semaphores(),
        barrier: Some(ccl_manager.barrier_semaphore()),
        intermediate_name: Some(format!("{name}.rs_intermediate")),
        ..ReduceScatterAsync::default()
    };
    let scattered = ccl::reduce_scatter_minimal_async(mesh, x, 3, &args("rs"), &rs_extra)?;
    let ag_extra = AllGatherAsync {
        semaphores: ccl_manager.ag_semaphores(),
        barrier: Some(ccl_manager.barrier_semaphore()),
        persistent_output: None,
    };
    let gathered = ccl::all_gather_async(mesh, &scattered, 3, &args("ag"), &ag_extra)?;
    mesh.deallocate(&scattered)?;
    Ok(gathered)
}
