//! Ingest + analysis throughput: decode framed records from memory and feed the analyzer.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::io::Cursor;
use ttsan_events::trace::{TraceReader, TraceWriter};
use ttsan_sanitizer::{AnalysisOptions, Analyzer};
use ttsan_test_support::synth;

fn encoded(events: u64) -> (Vec<u8>, u64) {
    let mut w = TraceWriter::new(Vec::new()).expect("writer");
    let mut n = 0;
    for e in synth::workload(events) {
        w.write(&e).expect("encode");
        n += 1;
    }
    (w.into_inner().expect("flush"), n)
}

fn bench(c: &mut Criterion) {
    let (bytes, n) = encoded(1_000_000);
    let mut g = c.benchmark_group("ingest");
    g.sample_size(10);
    g.throughput(Throughput::Elements(n));
    g.bench_function("decode_only", |b| {
        b.iter(|| {
            let mut r = TraceReader::new(Cursor::new(&bytes)).expect("header");
            let mut k = 0u64;
            while let Ok(Some(_)) = r.next_event() {
                k += 1;
            }
            k
        })
    });
    g.bench_function("decode_and_analyze", |b| {
        b.iter(|| {
            let mut r = TraceReader::new(Cursor::new(&bytes)).expect("header");
            let mut a = Analyzer::new(AnalysisOptions::default());
            while let Ok(Some(e)) = r.next_event() {
                a.feed(&e);
            }
            a.finish(Some(r.stats())).findings.len()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
