//! `ttnn.all_to_all_dispatch` / `ttnn.all_to_all_combine`: moving tokens to the chips that hold
//! their experts and the expert outputs back.

use super::{cached_semaphore, signal, signal_own, CclArgs, Groups};
use crate::dtype::{DType, PageLayout};
use crate::error::{SimError, SimResult};
use crate::host::HostTensor;
use crate::mesh::Mesh;
use crate::tensor::Tensor;
use ttsan_events::Role;

/// Experts of each device: `mapping` is `[1, 1, E, D]` with `mapping[e, d] != 0` when expert
/// `e` lives on device `d`; each device's experts are in expert order.
fn experts_by_device(mapping: &HostTensor, devices: usize, op: &str) -> SimResult<(usize, Vec<Vec<usize>>)> {
    let n = mapping.shape.len();
    if n < 2 || mapping.shape[n - 1] != devices {
        return Err(SimError::invalid(op, format!("expert mapping {:?} must end in {devices} devices", mapping.shape)));
    }
    let experts = mapping.shape[n - 2];
    let mut by_dev = vec![Vec::new(); devices];
    for e in 0..experts {
        for (d, list) in by_dev.iter_mut().enumerate() {
            if mapping.data[e * devices + d] != 0.0 {
                list.push(e);
            }
        }
    }
    Ok((experts, by_dev))
}

fn rank4(op: &str, what: &str, t: &Tensor) -> SimResult<[usize; 4]> {
    <[usize; 4]>::try_from(t.shape())
        .map_err(|_| SimError::invalid(op, format!("{what} must be rank 4, got {:?}", t.shape())))
}

/// `ttnn.all_to_all_dispatch(x, expert_indices, expert_mapping, cluster_axis=...)`.
///
/// `x` is `[B, S, 1, H]` row-major, `expert_indices` `[B, S, 1, K]`, `expert_mapping`
/// `[1, 1, E, D]`. Returns (`[1, B*G, S, H]` sparse tokens, `[1, B*G, S, K]` metadata) on
/// every chip of a group of G: token rows of a source chip at position p land at rows
/// `p*B + b` of every chip holding one of the token's experts (other rows are not written);
/// the metadata (every token's expert ids) goes to every chip.
pub fn all_to_all_dispatch(
    mesh: &mut Mesh,
    x: &Tensor,
    indices: &Tensor,
    mapping: &Tensor,
    args: &CclArgs,
) -> SimResult<(Tensor, Tensor)> {
    let name = "ttnn.all_to_all_dispatch";
    let [b, s, _, h] = rank4(name, "input", x)?;
    let [bi, si, _, k] = rank4(name, "expert_indices", indices)?;
    if x.layout() != PageLayout::RowMajor || (bi, si) != (b, s) {
        return Err(SimError::invalid(name, "input must be row-major [B,S,1,H] with indices [B,S,1,K]"));
    }
    let groups = Groups::new(mesh, args.cluster_axis, name)?;
    let g = groups.size();
    let devices = mesh.num_devices();
    let key = format!("{:?}/{:?}", x.shape(), args.cluster_axis);
    let mut op = mesh.begin_op(name, args.text(""), &[x, indices, mapping], &[], &[])?;
    let cores = op.compute_grid();
    let init = cached_semaphore(&mut op, &format!("init/{key}"), &format!("{name}.init_semaphore"))?;
    let done = cached_semaphore(&mut op, &format!("done/{key}"), &format!("{name}.semaphore"))?;
    let base = args.out.name_for(name);
    let out_spec = args.out.spec(&[1, b * g, s, h], x).row_major();
    let meta_spec = args.out.spec(&[1, b * g, s, k], x).row_major().with_dtype(DType::U32);
    let out = op.alloc_output(&out_spec, &base, Role::Activation)?;
    let meta = op.alloc_output(&meta_spec, &format!("{base}.metadata"), Role::Activation)?;
    op.circular_buffers(
        cores,
        &[("cb_tokens", 2 * x.placement().page_size), ("cb_indices", 2 * indices.placement().page_size)],
    )?;
    op.compute(|op| {
        let xs = op.read(x)?;
        let idxs = op.read(indices)?;
        let maps = op.read(mapping)?;
        let (_, by_dev) = experts_by_device(&maps[0], devices, name)?;
        let mut plans = Vec::with_capacity(devices);
        for (d, mine) in by_dev.iter().enumerate() {
            let mut rows = HostTensor::zeros(&[1, b * g, s, h]);
            let mut pages = Vec::new();
            let mut metadata = Vec::with_capacity(b * g * s * k);
            for (p, &src) in groups.members(d).iter().enumerate() {
                for bb in 0..b {
                    for ss in 0..s {
                        let tok = bb * s + ss;
                        let ids = &idxs[src].data[tok * k..(tok + 1) * k];
                        metadata.extend_from_slice(ids);
                        if ids.iter().any(|&e| mine.contains(&(e as usize))) {
                            let row = (p * b + bb) * s + ss;
                            rows.data[row * h..(row + 1) * h].copy_from_slice(&xs[src].data[tok * h..(tok + 1) * h]);
                            pages.push(row as u64);
                        }
                    }
                }
            }
            plans.push((rows, pages, HostTensor::new(vec![1, b * g, s, k], metadata)?));
        }
        let links = args.num_links;
        op.run_with(plans, |chip, (rows, pages, metadata)| {
            let bytes = out.spec().format().encode(&rows);
            chip.write_pages(&out, pages, &bytes)?;
            chip.write(&meta, &metadata)?;
            signal(chip, &init, &cores, links)?;
            signal(chip, &done, &cores, links)
        })?;
        Ok(())
    })?;
    op.finish()?;
    Ok((out, meta))
}

/// `ttnn.all_to_all_combine(x, metadata, expert_mapping, cluster_axis=...)`.
///
/// `x` is `[E_local, B*G, S, H]`: each chip's outputs of its local experts for every
/// dispatched token row. Returns `[K, B, S, H]` on every chip: for the chip's own tokens
/// (rows `p*B + b` of the metadata, p its group position) and each of the K selected
/// experts, the output row from the chip that holds that expert (zeros when the expert is
/// outside the group).
pub fn all_to_all_combine(
    mesh: &mut Mesh,
    x: &Tensor,
    metadata: &Tensor,
    mapping: &Tensor,
    args: &CclArgs,
) -> SimResult<Tensor> {
    let name = "ttnn.all_to_all_combine";
    let [el, bg, s, h] = rank4(name, "input", x)?;
    let [_, bgm, sm, k] = rank4(name, "metadata", metadata)?;
    let groups = Groups::new(mesh, args.cluster_axis, name)?;
    let g = groups.size();
    if bgm != bg || sm != s || bg % g != 0 {
        return Err(SimError::invalid(
            name,
            format!("input {:?} and metadata {:?} disagree", x.shape(), metadata.shape()),
        ));
    }
    let b = bg / g;
    let devices = mesh.num_devices();
    let key = format!("{:?}/{:?}", x.shape(), args.cluster_axis);
    let mut op = mesh.begin_op(name, args.text(""), &[x, metadata, mapping], &[], &[])?;
    let cores = op.compute_grid();
    let sem = cached_semaphore(&mut op, &format!("sem/{key}"), &format!("{name}.semaphore"))?;
    let out = op.alloc_output(&args.out.spec(&[k, b, s, h], x), &args.out.name_for(name), Role::Activation)?;
    op.circular_buffers(cores, &[("cb_tokens", 2 * x.placement().page_size)])?;
    op.compute(|op| {
        let xs = op.read(x)?;
        let metas = op.read(metadata)?;
        let maps = op.read(mapping)?;
        let (_, by_dev) = experts_by_device(&maps[0], devices, name)?;
        let mut results = Vec::with_capacity(devices);
        for (d, meta) in metas.iter().enumerate() {
            let p = groups.of[d].1;
            let mut o = HostTensor::zeros(&[k, b, s, h]);
            for bb in 0..b {
                for ss in 0..s {
                    let row = (p * b + bb) * s + ss;
                    for kk in 0..k {
                        let e = meta.data[row * k + kk] as usize;
                        let holder = groups.members(d).iter().find(|&&m| by_dev[m].contains(&e));
                        let Some(&m) = holder else { continue };
                        let Some(local) = by_dev[m].iter().position(|&x| x == e) else { continue };
                        if local >= el {
                            return Err(SimError::invalid(
                                name,
                                format!("device {m} holds more experts than its input's {el}"),
                            ));
                        }
                        // Each local expert's block is B*G token rows of S positions each.
                        let src = (local * bg * s + row) * h;
                        let dst = ((kk * b + bb) * s + ss) * h;
                        o.data[dst..dst + h].copy_from_slice(&xs[m].data[src..src + h]);
                    }
                }
            }
            results.push(o);
        }
        op.write(&out, results)?;
        signal_own(op, &sem, &cores, args.num_links)
    })?;
    op.finish()?;
    Ok(out)
}
