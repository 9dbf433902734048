//! Guard digests against the hashing limit: the simulator's per-page digests of a guarded
//! buffer (read from sparse chip memory, then blake3) against raw single-thread blake3 over the
//! same bytes, on one chip and on eight chips hashed in parallel.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use ttsan_events::{Space, Unit};
use ttsan_inference::sim::{digest_on_chips, digest_pages, page_digest, ChipMemory, DigestJob, Placement};

const PAGE: u64 = 2048;
const PAGES: u64 = 8192; // 16 MiB per chip
const CHIPS: usize = 8;

fn setup() -> (Placement, Vec<ChipMemory>, Vec<u8>) {
    let p = Placement {
        space: Space::Dram,
        address: 0x10_0040,
        page_size: PAGE,
        stride: PAGE,
        pages: PAGES,
        units: (0..12).map(Unit::Bank).collect(),
        shard_pages: None,
    };
    let mut bytes = vec![0u8; (PAGE * PAGES) as usize];
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for b in bytes.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let mut chips = Vec::new();
    for _ in 0..CHIPS {
        let mut mem = ChipMemory::new();
        for page in 0..PAGES {
            if let Some((unit, addr)) = p.locate(page) {
                let s = (page * PAGE) as usize;
                mem.write(Space::Dram, unit, addr, &bytes[s..s + PAGE as usize]);
            }
        }
        chips.push(mem);
    }
    (p, chips, bytes)
}

fn bench(c: &mut Criterion) {
    let (p, chips, bytes) = setup();
    let all: Vec<u64> = (0..PAGES).collect();
    let mut g = c.benchmark_group("guard_digest");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(PAGE * PAGES));
    g.bench_function("raw_blake3_per_page_1_chip", |b| {
        b.iter(|| bytes.chunks(PAGE as usize).map(page_digest).fold(0u8, |acc, d| acc ^ d[0]))
    });
    g.bench_function("sim_digest_1_chip", |b| b.iter(|| black_box(digest_pages(&p, &chips[0], &all, None))));
    g.throughput(Throughput::Bytes(PAGE * PAGES * CHIPS as u64));
    g.bench_function("raw_blake3_per_page_8_chips_1_thread", |b| {
        b.iter(|| {
            (0..CHIPS).fold(0u8, |acc, _| acc ^ bytes.chunks(PAGE as usize).map(page_digest).fold(0u8, |a, d| a ^ d[0]))
        })
    });
    let jobs: Vec<DigestJob<'_>> = chips.iter().map(|m| (m, all.as_slice(), None)).collect();
    g.bench_function("sim_digest_8_chips_parallel", |b| b.iter(|| black_box(digest_on_chips(&p, &jobs))));
    // Dirty-page tracking: after an op that wrote 64 pages, only those are re-hashed.
    let prev = digest_pages(&p, &chips[0], &all, None);
    let dirty: Vec<u64> = (0..64).map(|i| i * 97 % PAGES).collect();
    g.throughput(Throughput::Bytes(PAGE * PAGES));
    g.bench_function("sim_recheck_1_chip_64_dirty_pages", |b| {
        b.iter(|| black_box(digest_pages(&p, &chips[0], &dirty, Some(&prev))))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
