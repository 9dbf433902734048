//! Writes a large synthetic trace for scale testing of `ttsan report`.
//!
//! ```text
//! cargo run --release -p ttsan-viz --example gen_big_trace -- OUT.ttsan [ALLOCATIONS] [OPS]
//! cargo run --release -p ttsan-viz --example gen_big_trace -- --scenario OUT.ttsan
//! ```
//!
//! Defaults: one million allocations over ten thousand ops on a 2x4 Wormhole B0 mesh, with one
//! planted use-after-free. `--scenario` writes the small hand-built trace with a guard
//! corruption and a use-after-free instead (`--hostile-scenario`: with markup in its names).

use std::io::BufWriter;
use ttsan_test_support::synth::{scenario, write_trace, BigTrace, BigTraceOptions};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("gen_big_trace: {e}");
        std::process::exit(2);
    }
}

fn run(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: gen_big_trace OUT [ALLOCATIONS] [OPS] | --scenario OUT | --hostile-scenario OUT";
    let first = args.first().ok_or(usage)?;
    if first == "--scenario" || first == "--hostile-scenario" {
        let out = args.get(1).ok_or(usage)?;
        write_trace(BufWriter::new(std::fs::File::create(out)?), scenario(first == "--hostile-scenario"))?;
        return Ok(());
    }
    let mut opts = BigTraceOptions::default();
    if let Some(n) = args.get(1) {
        opts.allocations = n.parse()?;
    }
    if let Some(n) = args.get(2) {
        opts.ops = n.parse()?;
    }
    write_trace(BufWriter::new(std::fs::File::create(first)?), BigTrace::new(opts))?;
    Ok(())
}
