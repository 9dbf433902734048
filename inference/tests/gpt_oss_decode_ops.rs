//! The simulator's decode ops against CPU computations of what the ttnn ops define: head
//! split/concat in both forms, the three cache writes (only the updated rows change, and the
//! trace shows them as writes to the cache), and the decode SDPA with window and sinks, paged
//! and not. Every run must give a clean sanitizer analysis.

mod gpt_oss_support;

use gpt_oss_support::{assert_clean, recording};
use std::sync::Arc;
use ttsan_inference::common::rng::SplitMix64;
use ttsan_inference::sim::ops::{self, Out, QkvHeads, SdpaDecodeArgs};
use ttsan_inference::sim::{DType, Distribution, HostTensor, Mesh, MeshConfig, Tensor, TensorSpec};
use ttsan_shim::events::{Arch, Role};
use ttsan_shim::MemoryRecorder;

fn open() -> (Mesh, Arc<MemoryRecorder>) {
    recording(MeshConfig::new(Arch::WormholeB0, 1, 2).command("gpt_oss_decode_ops test"))
}

/// Small whole numbers, exact in bf16, so data movement must reproduce them bit for bit.
fn whole(shape: &[usize], seed: u64) -> HostTensor {
    let mut rng = SplitMix64::new(seed);
    HostTensor::from_fn(shape, |_| (rng.normal_vec(1, 0.0, 8.0)[0]).round())
}

fn put(mesh: &mut Mesh, host: &HostTensor, name: &str, role: Role) -> Tensor {
    let spec = TensorSpec::new(&host.shape, DType::Bf16);
    mesh.from_host(host, &spec, &Distribution::Replicate, name, role).unwrap()
}

fn put_u32(mesh: &mut Mesh, values: &[f32], shape: &[usize], name: &str) -> Tensor {
    let host = HostTensor::new(shape.to_vec(), values.to_vec()).unwrap();
    let spec = TensorSpec::new(shape, DType::U32).row_major();
    mesh.from_host(&host, &spec, &Distribution::Replicate, name, Role::Activation).unwrap()
}

fn get(mesh: &mut Mesh, t: &Tensor) -> HostTensor {
    mesh.to_host(t).unwrap().swap_remove(0)
}

#[test]
fn head_split_and_concat_move_values_exactly() {
    let (mut mesh, rec) = open();
    let (nh, nkv, d) = (4, 2, 32);
    let w = (nh + 2 * nkv) * d;
    let heads = QkvHeads { num_heads: nh, num_kv_heads: nkv };

    // Decode form: [1, 1, B, w] -> q [1, B, nh, d], k/v [1, B, nkv, d].
    let users = 2;
    let xd = whole(&[1, 1, users, w], 1);
    let t = put(&mut mesh, &xd, "xqkv_decode", Role::Activation);
    let (q, k, v) = ops::nlp_create_qkv_heads_decode(&mut mesh, &t, heads, &Out::dram()).unwrap();
    let (hq, hk, hv) = (get(&mut mesh, &q), get(&mut mesh, &k), get(&mut mesh, &v));
    assert_eq!((hq.shape.clone(), hk.shape.clone()), (vec![1, users, nh, d], vec![1, users, nkv, d]));
    for b in 0..users {
        let row = &xd.data[b * w..(b + 1) * w];
        assert_eq!(&hq.data[b * nh * d..(b + 1) * nh * d], &row[..nh * d]);
        assert_eq!(&hk.data[b * nkv * d..(b + 1) * nkv * d], &row[nh * d..(nh + nkv) * d]);
        assert_eq!(&hv.data[b * nkv * d..(b + 1) * nkv * d], &row[(nh + nkv) * d..]);
    }
    let joined = ops::nlp_concat_heads_decode(&mut mesh, &q, nh, &Out::dram()).unwrap();
    let hj = get(&mut mesh, &joined);
    assert_eq!(hj.shape, vec![1, 1, users, nh * d]);
    for b in 0..users {
        assert_eq!(&hj.data[b * nh * d..(b + 1) * nh * d], &xd.data[b * w..b * w + nh * d]);
    }

    // Prefill form: [1, 1, S, w] -> [1, heads, S, d], and back.
    let s = 40;
    let xp = whole(&[1, 1, s, w], 2);
    let t = put(&mut mesh, &xp, "xqkv_prefill", Role::Activation);
    let (q, k, v) = ops::nlp_create_qkv_heads(&mut mesh, &t, heads, &Out::dram()).unwrap();
    let (hq, hk, hv) = (get(&mut mesh, &q), get(&mut mesh, &k), get(&mut mesh, &v));
    assert_eq!((hq.shape.clone(), hv.shape.clone()), (vec![1, nh, s, d], vec![1, nkv, s, d]));
    for pos in 0..s {
        let row = &xp.data[pos * w..(pos + 1) * w];
        for h in 0..nh {
            assert_eq!(&hq.data[(h * s + pos) * d..][..d], &row[h * d..(h + 1) * d]);
        }
        for h in 0..nkv {
            assert_eq!(&hk.data[(h * s + pos) * d..][..d], &row[(nh + h) * d..(nh + h + 1) * d]);
            assert_eq!(&hv.data[(h * s + pos) * d..][..d], &row[(nh + nkv + h) * d..(nh + nkv + h + 1) * d]);
        }
    }
    let joined = ops::nlp_concat_heads(&mut mesh, &q, &Out::dram()).unwrap();
    let hj = get(&mut mesh, &joined);
    assert_eq!(hj.shape, vec![1, 1, s, nh * d]);
    for pos in 0..s {
        assert_eq!(&hj.data[pos * nh * d..(pos + 1) * nh * d], &xp.data[pos * w..pos * w + nh * d]);
    }
    assert_clean(mesh, &rec);
}

#[test]
fn cache_writes_land_on_the_right_rows_and_nowhere_else() {
    let (mut mesh, rec) = open();
    let (nkv, d, max_seq, block) = (2, 32, 128, 64);
    let zeros =
        |mesh: &mut Mesh, shape: &[usize], name: &str| put(mesh, &HostTensor::zeros(shape), name, Role::KvCache);
    let cache = zeros(&mut mesh, &[2, nkv, max_seq, d], "k_cache");
    let blocks = 4;
    let paged = zeros(&mut mesh, &[blocks, nkv, block, d], "k_cache_paged");
    // User 0 owns physical blocks 3 and 1, user 1 blocks 0 and 2.
    let table = put_u32(&mut mesh, &[3.0, 1.0, 0.0, 2.0], &[2, 2], "page_table");

    let s = 70;
    let input = whole(&[1, nkv, s, d], 3);
    let it = put(&mut mesh, &input, "k_prefill", Role::Activation);
    ops::fill_cache(&mut mesh, &cache, &it, 1).unwrap();
    ops::paged_fill_cache(&mut mesh, &paged, &it, &table, 0).unwrap();

    let new = whole(&[1, 2, nkv, d], 4);
    let nt = put(&mut mesh, &new, "k_new", Role::Activation);
    let pos = put_u32(&mut mesh, &[5.0, 100.0], &[2], "cur_pos");
    ops::paged_update_cache(&mut mesh, &cache, &nt, &pos, None).unwrap();
    ops::paged_update_cache(&mut mesh, &paged, &nt, &pos, Some(&table)).unwrap();

    // Expected contents, built position by position.
    let mut want = HostTensor::zeros(&[2, nkv, max_seq, d]);
    let mut want_paged = HostTensor::zeros(&[blocks, nkv, block, d]);
    let table_rows = [[3usize, 1], [0, 2]];
    for h in 0..nkv {
        for p in 0..s {
            let row = input.data[(h * s + p) * d..][..d].to_vec();
            // fill_cache went to user 1, paged_fill_cache to user 0.
            let flat = &mut want.data[((nkv + h) * max_seq + p) * d..][..d];
            flat.copy_from_slice(&row);
            let phys = table_rows[0][p / block];
            want_paged.data[((phys * nkv + h) * block + p % block) * d..][..d].copy_from_slice(&row);
        }
    }
    let mut set = |user: usize, h: usize, p: usize, row: &[f32]| {
        want.data[((user * nkv + h) * max_seq + p) * d..][..d].copy_from_slice(row);
        let phys = table_rows[user][p / block];
        want_paged.data[((phys * nkv + h) * block + p % block) * d..][..d].copy_from_slice(row);
    };
    for (user, p) in [(0, 5), (1, 100)] {
        for h in 0..nkv {
            let row = new.data[(user * nkv + h) * d..][..d].to_vec();
            set(user, h, p, &row);
        }
    }
    assert_eq!(get(&mut mesh, &cache), want);
    assert_eq!(get(&mut mesh, &paged), want_paged);
    assert_clean(mesh, &rec);
}

/// HF semantics for one query row: logits scaled, the raw sink as one more column, window
/// counting the query itself.
fn reference_row(q: &[f32], keys: &[&[f32]], values: &[&[f32]], sink: f32, scale: f32) -> Vec<f32> {
    let logits: Vec<f32> = keys.iter().map(|k| q.iter().zip(*k).map(|(a, b)| a * b).sum::<f32>() * scale).collect();
    let max = logits.iter().copied().fold(sink, f32::max);
    let exps: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let denom = exps.iter().sum::<f32>() + (sink - max).exp();
    let mut out = vec![0.0; q.len()];
    for (p, v) in exps.iter().zip(values) {
        for (o, x) in out.iter_mut().zip(*v) {
            *o += p / denom * x;
        }
    }
    out
}

#[test]
fn decode_sdpa_matches_hf_attention_with_window_and_sinks_paged_or_not() {
    let (mut mesh, rec) = open();
    let (nh, nkv, d, max_seq) = (4, 2, 64, 128);
    let scale = 0.125f32;
    let mut rng = SplitMix64::new(5);
    let mut normal =
        |shape: &[usize]| HostTensor::new(shape.to_vec(), rng.normal_vec(shape.iter().product(), 0.0, 1.0));
    let q = normal(&[1, 1, nh, d]).unwrap();
    let k = normal(&[1, nkv, max_seq, d]).unwrap();
    let v = normal(&[1, nkv, max_seq, d]).unwrap();
    let raw_sinks = [0.5f32, -1.0, 2.0, 0.0];
    let mut sinks = HostTensor::zeros(&[nh, 32]);
    for (h, s) in raw_sinks.iter().enumerate() {
        sinks.data[h * 32] = s / scale;
    }
    let qt = put(&mut mesh, &q, "q", Role::Activation);
    let kt = put(&mut mesh, &k, "k_cache", Role::KvCache);
    let vt = put(&mut mesh, &v, "v_cache", Role::KvCache);
    let st = put(&mut mesh, &sinks, "decode_sinks", Role::Weight);
    // The same cache paged: logical block i in physical block 1 - i.
    let swap = |t: &HostTensor| {
        let halves = t.split(2, 2).unwrap();
        HostTensor::concat(&[halves[1].clone(), halves[0].clone()], 0).unwrap()
    };
    let kp = put(&mut mesh, &swap(&k), "k_cache_paged", Role::KvCache);
    let vp = put(&mut mesh, &swap(&v), "v_cache_paged", Role::KvCache);
    let table = put_u32(&mut mesh, &[1.0, 0.0], &[1, 2], "page_table");
    // What the device holds (bf16), so the reference sees the same inputs.
    let (qd, kd, vd, sd) = (get(&mut mesh, &qt), get(&mut mesh, &kt), get(&mut mesh, &vt), get(&mut mesh, &st));

    let cur = 90;
    let pos = put_u32(&mut mesh, &[cur as f32], &[1], "cur_pos");
    for window in [None, Some(16)] {
        let args = SdpaDecodeArgs { sliding_window: window, scale: Some(scale) };
        let out =
            ops::scaled_dot_product_attention_decode(&mut mesh, &qt, &kt, &vt, &pos, Some(&st), args, &Out::dram())
                .unwrap();
        let paged = ops::paged_scaled_dot_product_attention_decode(
            &mut mesh,
            &qt,
            &kp,
            &vp,
            &table,
            &pos,
            Some(&st),
            args,
            &Out::dram(),
        )
        .unwrap();
        let (got, got_paged) = (get(&mut mesh, &out), get(&mut mesh, &paged));
        assert_eq!(got, got_paged, "window {window:?}: paged and contiguous caches agree exactly");
        let first = window.map_or(0, |w| cur + 1 - w);
        for h in 0..nh {
            let kh = h / (nh / nkv);
            let row = |t: &HostTensor, j: usize| t.data[((kh * max_seq) + j) * d..][..d].to_vec();
            let keys: Vec<Vec<f32>> = (first..=cur).map(|j| row(&kd, j)).collect();
            let values: Vec<Vec<f32>> = (first..=cur).map(|j| row(&vd, j)).collect();
            let kr: Vec<&[f32]> = keys.iter().map(Vec::as_slice).collect();
            let vr: Vec<&[f32]> = values.iter().map(Vec::as_slice).collect();
            let want = reference_row(&qd.data[h * d..(h + 1) * d], &kr, &vr, sd.data[h * 32] * scale, scale);
            for (g, w) in got.data[h * d..(h + 1) * d].iter().zip(&want) {
                // One bf16 rounding of the output apart.
                assert!((g - w).abs() <= w.abs() / 128.0 + 1e-6, "window {window:?} head {h}: {g} vs {w}");
            }
        }
    }
    // The window matters and so do the sinks: different settings give different outputs.
    let plain = SdpaDecodeArgs { sliding_window: None, scale: Some(scale) };
    let a =
        ops::scaled_dot_product_attention_decode(&mut mesh, &qt, &kt, &vt, &pos, None, plain, &Out::dram()).unwrap();
    let b = ops::scaled_dot_product_attention_decode(&mut mesh, &qt, &kt, &vt, &pos, Some(&st), plain, &Out::dram())
        .unwrap();
    assert_ne!(get(&mut mesh, &a), get(&mut mesh, &b));
    assert_clean(mesh, &rec);
}

#[test]
fn scatter_and_routing_remap_split_the_experts_over_the_rows() {
    let (mut mesh, rec) = recording(MeshConfig::new(Arch::WormholeB0, 2, 2));
    let e = 8;
    let zeros = put(&mut mesh, &HostTensor::zeros(&[1, 1, 1, e]), "zeros", Role::Activation);
    let index = put_u32(&mut mesh, &[6.0, 1.0, 4.0, 3.0], &[1, 1, 1, 4], "topk.indices");
    let weights = HostTensor::new(vec![1, 1, 1, 4], vec![0.5, 0.25, 0.125, 0.125]).unwrap();
    let wt = put(&mut mesh, &weights, "topk.weights", Role::Activation);
    let dense = ops::scatter(&mut mesh, &zeros, &index, &wt, &Out::dram()).unwrap();
    let want = [0.0, 0.25, 0.0, 0.125, 0.125, 0.0, 0.5, 0.0];
    assert_eq!(get(&mut mesh, &dense).data, want);
    let sparsity = ops::to_layout(&mut mesh, &dense, ttsan_inference::sim::PageLayout::RowMajor, &Out::dram()).unwrap();
    let remapped = ops::moe_routing_remap(&mut mesh, &sparsity, 4, 2, 0, &Out::dram()).unwrap();
    let per_chip = mesh.to_host(&remapped).unwrap();
    // Row 0 (chips 0, 1) keeps experts 0..4, row 1 (chips 2, 3) experts 4..8.
    for (chip, got) in per_chip.iter().enumerate() {
        let row = chip / 2;
        let expect: Vec<f32> = want.iter().enumerate().map(|(i, &v)| if i / 4 == row { v } else { 0.0 }).collect();
        assert_eq!(got.data, expect, "chip {chip}");
    }
    // The ranks must match the axis, and more selected experts than declared are refused.
    assert!(ops::moe_routing_remap(&mut mesh, &sparsity, 4, 4, 0, &Out::dram()).is_err());
    assert!(ops::moe_routing_remap(&mut mesh, &sparsity, 2, 2, 0, &Out::dram()).is_err());
    assert_clean(mesh, &rec);
}

#[test]
fn gpt_oss_ccl_cores_fit_the_compute_grid_of_each_mesh() {
    use ttsan_inference::gpt_oss::ccl::cores as gpt_oss_ccl_cores;
    use ttsan_inference::sim::ccl::Topology;
    use ttsan_shim::events::{CoreCoord, CoreRange};
    let rect = |x: u16, y: u16| CoreRange::new(CoreCoord::new(0, 0), CoreCoord::new(x, y));
    // T3K chips (1x8) have an 8x7 compute grid, Galaxy chips (4x8) the whole 8x9 one.
    for (rows, cols, want) in [(1, 8, rect(7, 6)), (4, 8, rect(7, 7))] {
        let (mut mesh, rec) = recording(MeshConfig::new(Arch::WormholeB0, rows, cols));
        assert_eq!(gpt_oss_ccl_cores(&mesh), want, "{rows}x{cols}");
        ttsan_inference::gpt_oss::ccl::manager(&mut mesh, Topology::Ring, 1).unwrap();
        assert_clean(mesh, &rec);
    }
}
