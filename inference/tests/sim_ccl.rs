//! Collectives are exact against a CPU reference on 8 and 32 chips, along both mesh axes and
//! the whole mesh, on rings and lines.

mod sim_support;

use sim_support::{analyze, describe, ints, mesh};
use ttsan_inference::sim::ccl::{self, AllGatherAsync, CclArgs, CclManager, ReduceScatterAsync, Topology};
use ttsan_inference::sim::{DType, DetectMode, HostTensor, Mesh, TensorSpec};
use ttsan_shim::events::{CoreCoord, CoreRange, Role};

const MESHES: [(u32, u32); 3] = [(1, 8), (2, 4), (4, 8)];
const AXES: [Option<usize>; 3] = [Some(0), Some(1), None];

/// The device groups of a collective, computed independently of the simulator.
fn groups(rows: usize, cols: usize, axis: Option<usize>) -> Vec<Vec<usize>> {
    match axis {
        Some(0) => (0..cols).map(|c| (0..rows).map(|r| r * cols + c).collect()).collect(),
        Some(1) => (0..rows).map(|r| (0..cols).map(|c| r * cols + c).collect()).collect(),
        _ => vec![(0..rows * cols).collect()],
    }
}

fn group_of(gs: &[Vec<usize>], d: usize) -> (&[usize], usize) {
    let g = gs.iter().find(|g| g.contains(&d)).expect("every device is in a group");
    (g, g.iter().position(|&x| x == d).expect("member"))
}

fn sum(parts: &[&HostTensor]) -> HostTensor {
    let mut acc = parts[0].clone();
    for p in &parts[1..] {
        for (a, b) in acc.data.iter_mut().zip(&p.data) {
            *a += b;
        }
    }
    acc
}

fn pieces(n: usize, shape: &[usize], seed: usize) -> Vec<HostTensor> {
    (0..n).map(|d| ints(shape, seed + 31 * d)).collect()
}

fn put(m: &mut Mesh, pieces: &[HostTensor], name: &str) -> ttsan_inference::sim::Tensor {
    let spec = TensorSpec::new(&pieces[0].shape, DType::Bf16);
    m.from_host_per_device(pieces.to_vec(), &spec, name, Role::Activation).expect("upload")
}

#[test]
fn gathers_and_reductions_are_exact() {
    for (rows, cols) in MESHES {
        let (r, c) = (rows as usize, cols as usize);
        let n = r * c;
        let (mut m, rec) = mesh(rows, cols, DetectMode::Both, Vec::new());
        let cores = CoreRange::new(CoreCoord::new(0, 0), CoreCoord::new(3, 0));
        let mut mgr = CclManager::new(&mut m, cores, Topology::Ring, 2).unwrap();
        for axis in AXES {
            let gs = groups(r, c, axis);
            let g = gs[0].len();
            for topology in [Topology::Ring, Topology::Linear] {
                let ctx = format!("{rows}x{cols} axis {axis:?} {topology:?}");
                let args = CclArgs { cluster_axis: axis, topology, ..CclArgs::default() };
                // Gather along dim 2 and dim 3.
                let small = pieces(n, &[1, 1, 32, 32], 1);
                let x = put(&mut m, &small, "x");
                for dim in [2usize, 3] {
                    let sync = ccl::all_gather(&mut m, &x, dim as i64, &args).unwrap();
                    let extra = AllGatherAsync {
                        semaphores: mgr.ag_semaphores(),
                        barrier: Some(mgr.barrier_semaphore()),
                        persistent_output: None,
                    };
                    let asy = ccl::all_gather_async(&mut m, &x, dim as i64, &args, &extra).unwrap();
                    let (got, got_async) = (m.to_host(&sync).unwrap(), m.to_host(&asy).unwrap());
                    for d in 0..n {
                        let (members, _) = group_of(&gs, d);
                        let parts: Vec<HostTensor> = members.iter().map(|&i| small[i].clone()).collect();
                        let want = HostTensor::concat(&parts, dim).unwrap();
                        assert_eq!(got[d], want, "{ctx} all_gather dim {dim} device {d}");
                        assert_eq!(got_async[d], want, "{ctx} all_gather_async dim {dim} device {d}");
                    }
                    m.deallocate(&sync).unwrap();
                    m.deallocate(&asy).unwrap();
                }
                // Reduce-scatter along the last dim, all-reduce.
                let wide = pieces(n, &[1, 1, 32, 32 * g], 2);
                let w = put(&mut m, &wide, "wide");
                let rs = ccl::reduce_scatter(&mut m, &w, 3, &args).unwrap();
                let extra = ReduceScatterAsync { semaphores: mgr.rs_semaphores(), ..Default::default() };
                let rsa = ccl::reduce_scatter_minimal_async(&mut m, &w, 3, &args, &extra).unwrap();
                let ar = ccl::all_reduce(&mut m, &w, &args).unwrap();
                let (got_rs, got_rsa, got_ar) =
                    (m.to_host(&rs).unwrap(), m.to_host(&rsa).unwrap(), m.to_host(&ar).unwrap());
                for d in 0..n {
                    let (members, pos) = group_of(&gs, d);
                    let total = sum(&members.iter().map(|&i| &wide[i]).collect::<Vec<_>>());
                    let mine = total.slice_dim(3, pos * 32, (pos + 1) * 32).unwrap();
                    assert_eq!(got_rs[d], mine, "{ctx} reduce_scatter device {d}");
                    assert_eq!(got_rsa[d], mine, "{ctx} reduce_scatter_minimal_async device {d}");
                    assert_eq!(got_ar[d], total, "{ctx} all_reduce device {d}");
                }
                for t in [&x, &w, &rs, &rsa, &ar] {
                    m.deallocate(t).unwrap();
                }
            }
        }
        m.release_op_cache().unwrap();
        m.finish().unwrap();
        let a = analyze(&rec.take());
        assert!(a.findings.is_empty(), "{rows}x{cols}:\n{}", describe(&a.findings));
    }
}

#[test]
fn all_to_all_dispatch_and_combine_route_exactly() {
    for (rows, cols) in MESHES {
        let n = (rows * cols) as usize;
        let (mut m, rec) = mesh(rows, cols, DetectMode::Writes, Vec::new());
        for axis in AXES {
            let gs = groups(rows as usize, cols as usize, axis);
            let g = gs[0].len();
            let (b, k, h) = (2usize, 2usize, 16usize);
            // Two experts per device; expert e lives on device e / 2.
            let experts = 2 * n;
            let tokens: Vec<HostTensor> = (0..n).map(|d| ints(&[b, 1, 1, h], 40 + d)).collect();
            let choice: Vec<HostTensor> = (0..n)
                .map(|d| HostTensor::from_fn(&[b, 1, 1, k], |i| ((d * 5 + i * 3 + 1) % experts) as f32))
                .collect();
            let mapping = HostTensor::from_fn(&[1, 1, experts, n], |i| if (i / n) / 2 == i % n { 1.0 } else { 0.0 });
            let rm = |shape: &[usize], dt| TensorSpec::new(shape, dt).row_major();
            let x = m
                .from_host_per_device(tokens.clone(), &rm(&[b, 1, 1, h], DType::Bf16), "tokens", Role::Activation)
                .unwrap();
            let idx = m
                .from_host_per_device(choice.clone(), &rm(&[b, 1, 1, k], DType::U32), "indices", Role::Activation)
                .unwrap();
            let map = m
                .from_host(
                    &mapping,
                    &rm(&[1, 1, experts, n], DType::U32),
                    &ttsan_inference::sim::Distribution::Replicate,
                    "mapping",
                    Role::Weight,
                )
                .unwrap();
            let args = CclArgs { cluster_axis: axis, ..CclArgs::default() };
            let (disp, meta) = ccl::all_to_all_dispatch(&mut m, &x, &idx, &map, &args).unwrap();
            let (got, got_meta) = (m.to_host(&disp).unwrap(), m.to_host(&meta).unwrap());
            for d in 0..n {
                let (members, _) = group_of(&gs, d);
                for (p, &src) in members.iter().enumerate() {
                    for bb in 0..b {
                        let row = p * b + bb;
                        let ids = &choice[src].data[bb * k..(bb + 1) * k];
                        assert_eq!(&got_meta[d].data[row * k..(row + 1) * k], ids, "metadata {d} row {row}");
                        if ids.iter().any(|&e| e as usize / 2 == d) {
                            assert_eq!(
                                &got[d].data[row * h..(row + 1) * h],
                                &tokens[src].data[bb * h..(bb + 1) * h],
                                "axis {axis:?} device {d} row {row}"
                            );
                        }
                    }
                }
            }
            // Expert outputs: local expert j of device d answers token row r with the row
            // scaled by (2d + j + 1), so the combine result says who answered.
            let expert_out: Vec<HostTensor> = (0..n)
                .map(|d| {
                    let src = &got[d];
                    HostTensor::from_fn(&[2, b * g, 1, h], |i| {
                        src.data[i % (b * g * h)] * ((2 * d + i / (b * g * h) + 1) % 4) as f32
                    })
                })
                .collect();
            let eo = m
                .from_host_per_device(
                    expert_out.clone(),
                    &rm(&[2, b * g, 1, h], DType::Bf16),
                    "expert_out",
                    Role::Activation,
                )
                .unwrap();
            let comb = ccl::all_to_all_combine(&mut m, &eo, &meta, &map, &args).unwrap();
            let got_comb = m.to_host(&comb).unwrap();
            for d in 0..n {
                let (members, p) = group_of(&gs, d);
                for bb in 0..b {
                    for kk in 0..k {
                        let e = choice[d].data[bb * k + kk] as usize;
                        let holder = e / 2;
                        let at = (kk * b + bb) * h;
                        let got_row = &got_comb[d].data[at..at + h];
                        if members.contains(&holder) {
                            let src = ((e % 2) * b * g + p * b + bb) * h;
                            assert_eq!(got_row, &expert_out[holder].data[src..src + h], "combine {d} k{kk} b{bb}");
                        } else {
                            assert!(got_row.iter().all(|&v| v == 0.0), "expert {e} outside the group must give zeros");
                        }
                    }
                }
            }
            for t in [&x, &idx, &map, &disp, &meta, &eo, &comb] {
                m.deallocate(t).unwrap();
            }
        }
        m.finish().unwrap();
        let a = analyze(&rec.take());
        assert!(a.findings.is_empty(), "{rows}x{cols}:\n{}", describe(&a.findings));
    }
}
