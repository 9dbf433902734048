//! Writes the synthetic benchmark workload as a trace file: `synthetic_trace OUT EVENTS`.

use std::io::BufWriter;
use ttsan_events::trace::TraceWriter;
use ttsan_test_support::synth;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = args.next().ok_or("usage: synthetic_trace OUT EVENTS")?;
    let events: u64 = args.next().ok_or("usage: synthetic_trace OUT EVENTS")?.parse()?;
    let mut w = TraceWriter::new(BufWriter::new(std::fs::File::create(&out)?))?;
    for e in synth::workload(events) {
        w.write(&e)?;
    }
    let n = w.records();
    w.into_inner()?;
    println!("{n} events written to {out}");
    Ok(())
}
