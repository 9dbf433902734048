//! Op results against CPU references, page mappings, coalesced writes and sparse memory.

mod sim_support;

use sim_support::{analyze, describe, ints, mesh, mesh_arch, replicated, smooth};
use ttsan_inference::sim::ccl::{self, CclArgs};
use ttsan_inference::sim::ops::{self, MatmulArgs, Out, ReduceOp, SdpaArgs};
use ttsan_inference::sim::{
    DType, DetectMode, Distribution, HostTensor, MemoryConfig, Mesh, PageLayout, SimResult, Tensor, TensorSpec, CHUNK,
};
use ttsan_shim::events::{Arch, CoreCoord, CoreRange, Event, Role, Unit};

/// Every chip's values of an op's result.
fn host(m: &mut Mesh, t: SimResult<Tensor>) -> Vec<HostTensor> {
    let t = t.expect("op runs");
    m.to_host(&t).expect("readable")
}

fn bf16(v: f32) -> f32 {
    DType::Bf16.round(v)
}

#[test]
fn matmul_of_whole_numbers_is_exact_and_sharded_per_device() {
    let (mut m, _) = mesh(1, 8, DetectMode::Writes, Vec::new());
    let a_host = ints(&[1, 1, 64, 96], 1);
    let b_host = ints(&[1, 1, 96, 8 * 32], 2);
    let a = replicated(&mut m, &a_host, "a", Role::Activation).unwrap();
    // Column-parallel weight: each chip holds 32 output columns.
    let b = m
        .from_host(
            &b_host,
            &TensorSpec::new(&[1, 1, 96, 32], DType::Bf16),
            &Distribution::Shard { axis: 1, dim: 3 },
            "w",
            Role::Weight,
        )
        .unwrap();
    let c = ops::matmul(&mut m, &a, &b, MatmulArgs::default(), &Out::dram()).unwrap();
    let got = m.to_host(&c).unwrap();
    let full = HostTensor::concat(&got, 3).unwrap();
    for i in 0..64 {
        for j in 0..256 {
            let want: f32 = (0..96).map(|k| a_host.data[i * 96 + k] * b_host.data[k * 256 + j]).sum();
            assert_eq!(full.data[i * 256 + j], want, "({i},{j})");
        }
    }
    m.finish().unwrap();
}

#[test]
fn layouts_and_memory_configs_round_trip() {
    let (mut m, _) = mesh(1, 1, DetectMode::Writes, Vec::new());
    let host = smooth(&[2, 1, 40, 70], 3);
    let x = m
        .from_host(
            &host,
            &TensorSpec::new(&[2, 1, 40, 70], DType::F32),
            &Distribution::Replicate,
            "x",
            Role::Activation,
        )
        .unwrap();
    let rm = ops::to_layout(&mut m, &x, PageLayout::RowMajor, &Out::l1()).unwrap();
    assert_eq!(rm.placement().page_size, 70 * 4);
    let cores = CoreRange::new(CoreCoord::new(0, 0), CoreCoord::new(3, 1));
    let sharded = ops::to_memory_config(&mut m, &rm, MemoryConfig::L1HeightSharded { cores }, &Out::default()).unwrap();
    // 80 rows over 8 cores: 10 consecutive rows per core, same address on each.
    let p = sharded.placement();
    assert_eq!(p.locate(0), Some((Unit::Core(CoreCoord::new(0, 0)), sharded.address())));
    assert_eq!(p.locate(15), Some((Unit::Core(CoreCoord::new(1, 0)), sharded.address() + 5 * 288)));
    assert_eq!(p.locate(79), Some((Unit::Core(CoreCoord::new(3, 1)), sharded.address() + 9 * 288)));
    let back = ops::to_layout(&mut m, &sharded, PageLayout::Tile, &Out::dram()).unwrap();
    assert_eq!(m.to_host(&back).unwrap()[0], host);
    let uneven = ops::to_memory_config(
        &mut m,
        &rm,
        MemoryConfig::L1HeightSharded { cores: CoreRange::new(CoreCoord::new(0, 0), CoreCoord::new(2, 0)) },
        &Out::default(),
    );
    assert!(uneven.unwrap_err().to_string().contains("do not split evenly"));
    m.finish().unwrap();
}

#[test]
fn per_chip_ops_match_their_definitions() {
    let (mut m, rec) = mesh(2, 4, DetectMode::Both, Vec::new());
    let rep = Distribution::Replicate;
    let xh = smooth(&[1, 1, 32, 64], 4);
    let x = replicated(&mut m, &xh, "x", Role::Activation).unwrap();
    let xr: Vec<f32> = xh.data.iter().map(|&v| bf16(v)).collect();

    let sm = {
        let t = ops::softmax(&mut m, &x, -1, &Out::dram().dtype(DType::F32));
        host(&mut m, t)
    };
    for row in sm[3].data.chunks(64) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
    }
    let mx = {
        let t = ops::reduce(&mut m, ReduceOp::Max, &x, -1, &Out::dram());
        host(&mut m, t)
    };
    let (vals, idx) = ops::topk(&mut m, &x, 3, &Out::dram()).unwrap();
    let (vals, idx) = (m.to_host(&vals).unwrap(), m.to_host(&idx).unwrap());
    for r in 0..32 {
        let row = &xr[r * 64..(r + 1) * 64];
        let best = row.iter().cloned().fold(f32::MIN, f32::max);
        assert_eq!(mx[5].data[r], best);
        assert_eq!(vals[5].data[r * 3], best);
        assert_eq!(row[idx[5].data[r * 3] as usize], best);
        assert!(vals[5].data[r * 3] >= vals[5].data[r * 3 + 1] && vals[5].data[r * 3 + 1] >= vals[5].data[r * 3 + 2]);
    }
    let sl = {
        let t = ops::slice(&mut m, &x, &[0, 0, 3, 10], &[1, 1, 5, 13], &Out::dram());
        host(&mut m, t)
    };
    assert_eq!(
        sl[0].data,
        vec![xr[3 * 64 + 10], xr[3 * 64 + 11], xr[3 * 64 + 12], xr[4 * 64 + 10], xr[4 * 64 + 11], xr[4 * 64 + 12]]
    );

    // Embedding picks rows; rotary with cos=1, sin=0 is the identity.
    let table = ints(&[1, 1, 10, 32], 5);
    let wt = m
        .from_host(&table, &TensorSpec::new(&[1, 1, 10, 32], DType::Bf16).row_major(), &rep, "embed", Role::Weight)
        .unwrap();
    let ids = m
        .from_host(
            &HostTensor::new(vec![1, 1, 3], vec![7.0, 0.0, 7.0]).unwrap(),
            &TensorSpec::new(&[1, 1, 3], DType::U32).row_major(),
            &rep,
            "ids",
            Role::Activation,
        )
        .unwrap();
    let e = {
        let t = ops::embedding(&mut m, &ids, &wt, &Out::dram());
        host(&mut m, t)
    };
    assert_eq!(&e[2].data[..32], &table.data[7 * 32..8 * 32]);
    assert_eq!(&e[2].data[64..96], &table.data[7 * 32..8 * 32]);
    let ones = replicated(&mut m, &HostTensor::from_fn(&[1, 1, 32, 64], |_| 1.0), "cos", Role::Weight).unwrap();
    let zeros = replicated(&mut m, &HostTensor::zeros(&[1, 1, 32, 64]), "sin", Role::Weight).unwrap();
    let rot = {
        let t = ops::rotary_embedding(&mut m, &x, &ones, &zeros, &Out::dram());
        host(&mut m, t)
    };
    assert_eq!(rot[1].data, xr);

    // SDPA: with a sink logit far below every score the sink changes nothing; a huge sink
    // takes all the mass.
    let q = replicated(&mut m, &smooth(&[1, 2, 32, 32], 6), "q", Role::Activation).unwrap();
    let kv = replicated(&mut m, &smooth(&[1, 1, 32, 32], 7), "kv", Role::KvCache).unwrap();
    let low = m
        .from_host(
            &HostTensor::from_fn(&[1, 2, 1, 1], |_| -1e4),
            &TensorSpec::new(&[1, 2, 1, 1], DType::F32),
            &rep,
            "low.sinks",
            Role::Weight,
        )
        .unwrap();
    let high = m
        .from_host(
            &HostTensor::from_fn(&[1, 2, 1, 1], |_| 1e4),
            &TensorSpec::new(&[1, 2, 1, 1], DType::F32),
            &rep,
            "high.sinks",
            Role::Weight,
        )
        .unwrap();
    let args = SdpaArgs { is_causal: true, sliding_window: Some(4), scale: None };
    let out = Out::dram().dtype(DType::F32);
    let plain = {
        let t = ops::scaled_dot_product_attention(&mut m, &q, &kv, &kv, None, args, &out);
        host(&mut m, t)
    };
    let lowv = {
        let t = ops::scaled_dot_product_attention(&mut m, &q, &kv, &kv, Some(&low), args, &out);
        host(&mut m, t)
    };
    let highv = {
        let t = ops::scaled_dot_product_attention(&mut m, &q, &kv, &kv, Some(&high), args, &out);
        host(&mut m, t)
    };
    assert_eq!(plain, lowv);
    assert!(highv[0].data.iter().all(|v| v.abs() < 1e-6));
    // Row 0 attends only to key 0, whatever the window.
    let kvh: Vec<f32> = smooth(&[1, 1, 32, 32], 7).data.iter().map(|&v| bf16(v)).collect();
    assert_eq!(&plain[0].data[..32], &kvh[..32]);

    // Sparse matmul skips masked blocks.
    let a = replicated(&mut m, &ints(&[2, 1, 32, 32], 8), "blocks", Role::Activation).unwrap();
    let w = replicated(&mut m, &ints(&[1, 3, 32, 32], 9), "experts", Role::Weight).unwrap();
    let mask = replicated(
        &mut m,
        &HostTensor::new(vec![1, 1, 2, 3], vec![1.0, 0.0, 1.0, 0.0, 1.0, 0.0]).unwrap(),
        "mask",
        Role::Activation,
    )
    .unwrap();
    let sp = {
        let t = ops::sparse_matmul(&mut m, &a, &w, &mask, &Out::dram());
        host(&mut m, t)
    };
    let block = |i: usize, e: usize| &sp[0].data[(i * 3 + e) * 1024..(i * 3 + e + 1) * 1024];
    assert!(block(0, 1).iter().all(|&v| v == 0.0) && block(1, 0).iter().all(|&v| v == 0.0));
    assert!(block(0, 0).iter().any(|&v| v != 0.0) && block(1, 1).iter().any(|&v| v != 0.0));
    m.finish().unwrap();
    let a = analyze(&rec.take());
    assert!(a.findings.is_empty(), "{}", describe(&a.findings));
}

#[test]
fn writes_are_coalesced_per_contiguous_run_and_unit() {
    let (mut m, rec) = mesh(1, 8, DetectMode::Writes, Vec::new());
    let banks = m.geometry().dram_banks as usize;
    // 4 tiles per bank, back to back: one Write per bank per chip.
    let shape = [1, 1, 64, 64 * banks];
    let x = replicated(&mut m, &ints(&shape, 1), "x", Role::Activation).unwrap();
    let writes: Vec<_> =
        rec.take().into_iter().filter_map(|e| if let Event::Write(w) = e { Some(w) } else { None }).collect();
    assert_eq!(writes.len(), 8 * banks);
    assert!(writes.iter().all(|w| w.len == 4 * 2048 && w.address == x.address() && w.op.is_none()));
    // Row-major pages of 40 B sit in 64 B slots: runs break at the gaps.
    let rm = TensorSpec::new(&[1, 1, 2 * banks, 20], DType::Bf16).row_major();
    let y =
        m.from_host(&ints(&[1, 1, 2 * banks, 20], 2), &rm, &Distribution::Replicate, "y", Role::Activation).unwrap();
    let writes: Vec<_> =
        rec.take().into_iter().filter_map(|e| if let Event::Write(w) = e { Some(w) } else { None }).collect();
    assert_eq!(writes.len(), 8 * banks * 2);
    assert!(writes.iter().all(|w| w.len == 40 && (w.address - y.address()) % 64 == 0));
    m.finish().unwrap();
}

#[test]
fn memory_costs_what_is_written_and_any_mesh_shape_works() {
    let (mut m, _) = mesh(4, 8, DetectMode::Writes, Vec::new());
    let x = replicated(&mut m, &ints(&[1, 1, 32, 32], 1), "x", Role::Activation).unwrap();
    // One 2 KiB tile per chip: one chunk per chip, not gigabytes.
    assert_eq!(m.resident_bytes(), 32 * CHUNK);
    m.deallocate(&x).unwrap();
    m.finish().unwrap();
    for (arch, rows, cols) in [(Arch::WormholeB0, 2, 3), (Arch::Blackhole, 1, 2), (Arch::Blackhole, 3, 1)] {
        let (mut m, rec) = mesh_arch(arch, rows, cols, DetectMode::Both, Vec::new());
        let x = m
            .from_host_per_device(
                (0..rows * cols).map(|d| ints(&[1, 1, 32, 32], d as usize)).collect(),
                &TensorSpec::new(&[1, 1, 32, 32], DType::Bf16),
                "x",
                Role::Activation,
            )
            .unwrap();
        for axis in [0, 1] {
            let g = ccl::all_gather(&mut m, &x, 2, &CclArgs::axis(axis)).unwrap();
            let size = if axis == 0 { rows } else { cols } as usize;
            assert_eq!(g.shape(), [1, 1, 32 * size, 32]);
        }
        m.finish().unwrap();
        assert!(analyze(&rec.take()).findings.is_empty());
    }
}

#[test]
fn reshape_permute_and_compose() {
    let (mut m, rec) = mesh(2, 4, DetectMode::Writes, Vec::new());
    let full = ints(&[1, 2, 64, 128], 3);
    let spec = TensorSpec::new(&[1, 2, 32, 32], DType::Bf16);
    let x = m
        .from_host(&full, &spec, &Distribution::Shard2d { rows: Some(2), cols: Some(3) }, "x", Role::Activation)
        .unwrap();
    assert_eq!(m.compose(&x, Some(2), Some(3)).unwrap(), full);
    let local = m.to_host(&x).unwrap();
    let p = {
        let t = ops::permute(&mut m, &x, &[0, 3, 1, 2], &Out::dram());
        host(&mut m, t)
    };
    for d in [0, 5] {
        let src = &local[d];
        for h in 0..2 {
            for r in 0..32 {
                for c in 0..32 {
                    assert_eq!(p[d].data[(c * 2 + h) * 32 + r], src.data[(h * 32 + r) * 32 + c]);
                }
            }
        }
    }
    let t = {
        let t = ops::transpose(&mut m, &x, -2, -1, &Out::dram());
        host(&mut m, t)
    };
    assert_eq!(t[1].data[3 * 32 + 7], local[1].data[7 * 32 + 3]);
    let r = {
        let t = ops::reshape(&mut m, &x, &[1, 1, 64, 32], &Out::dram().layout(PageLayout::RowMajor));
        host(&mut m, t)
    };
    assert_eq!(r[2].data, local[2].data);
    assert!(ops::reshape(&mut m, &x, &[1, 1, 63, 32], &Out::dram()).is_err());
    m.finish().unwrap();
    assert!(analyze(&rec.take()).findings.is_empty());
}
