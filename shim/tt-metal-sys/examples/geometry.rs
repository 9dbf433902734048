//! Prints what the real allocator reports in mock mode, plus a few probe allocations.
//!
//! `cargo run -p tt-metal-sys --example geometry -- [wormhole|blackhole] [CHIPS]`

use std::process::ExitCode;
use tt_metal_sys::{Arch, BufferKind, MockMesh, OpenOptions, RuntimeRoot};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let arch = match args.next().as_deref() {
        None | Some("wormhole") => Arch::WormholeB0,
        Some("blackhole") => Arch::Blackhole,
        Some(other) => {
            eprintln!("unknown arch {other} (wormhole or blackhole)");
            return ExitCode::from(2);
        }
    };
    let chips = match args.next().map(|c| c.parse::<u32>()) {
        None => 1,
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            eprintln!("bad chip count: {e}");
            return ExitCode::from(2);
        }
    };
    match run(arch, chips) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(arch: Arch, chips: u32) -> Result<(), Box<dyn std::error::Error>> {
    let root = RuntimeRoot::locate(None);
    // Nonzero L1_SMALL and trace sizes so that those spaces report real numbers too.
    let opts = OpenOptions { l1_small_size: 32 * 1024, trace_region_size: 1 << 20, ..OpenOptions::default() };
    let mut mesh = MockMesh::open_with(&root, arch, chips, opts)?;
    println!("mesh: {:?}", mesh.info());
    let f = mesh.facts().clone();
    println!("dram: {:?} base {:#x}", f.dram, f.dram_base);
    println!("l1: {:?} base {:#x} worker_l1_size {:#x}", f.l1, f.l1_base, f.worker_l1_size);
    println!("l1_small: {:?}", f.l1_small);
    println!("trace: {:?}", f.trace);
    println!("dram bank offsets: {:?}", f.dram_bank_offsets);
    println!("l1 bank -> core: {:?}", f.l1_bank_cores);
    for (kind, size, page) in [
        (BufferKind::Dram, 128 * 1024, 2048),
        (BufferKind::L1, 32 * 1024, 2048),
        (BufferKind::L1Small, 4096, 2048),
        (BufferKind::Trace, 4096, 2048),
        (BufferKind::L1, 16 * u64::from(f.l1.num_banks), 16),
        (BufferKind::L1, 16 * u64::from(f.l1.num_banks), 16),
    ] {
        match mesh.allocate(kind, size, page) {
            Ok(b) => println!("alloc {kind:?} {size} page {page}: {:#x} {:?}", b.address(), b.info()),
            Err(e) => println!("alloc {kind:?} {size} page {page}: {e}"),
        }
    }
    mesh.close()?;
    Ok(())
}
