//! A run is a function of its options: the same `ttsan run gpt-oss` twice records the same
//! events in the same order. Addresses depend on the order of every allocation and free, so
//! any map iteration order leaking into the simulator would move buffers between runs and make
//! a finding appear in one run and not the next.

use std::sync::Arc;
use ttsan_inference::gpt_oss::run::{run, Mode, RunOptions};
use ttsan_shim::events::Event;
use ttsan_shim::MemoryRecorder;

fn record(o: &RunOptions) -> Vec<Event> {
    let rec = Arc::new(MemoryRecorder::new());
    run(o, rec.clone(), &|_| {}).unwrap();
    rec.take()
}

#[test]
fn the_same_run_twice_records_the_same_trace() {
    for (rows, cols, mode) in [(1, 8, None), (4, 8, Some(Mode::Prefill))] {
        let o = RunOptions { rows, cols, mode, seq_len: 32, decode_steps: 2, ..RunOptions::default() };
        let (a, b) = (record(&o), record(&o));
        // Every module test ends by releasing the op cache, many buffers at once: the frees
        // that most easily come out in a different order.
        let frees = a.iter().filter(|e| matches!(e, Event::BufferFree(f) if f.op.is_none())).count();
        assert!(frees > 10, "{rows}x{cols}: only {frees} host frees");
        assert_eq!(a.len(), b.len(), "{rows}x{cols}");
        if let Some(i) = a.iter().zip(&b).position(|(x, y)| x != y) {
            panic!("{rows}x{cols}: event {i} differs:\n{:?}\n{:?}", a[i], b[i]);
        }
    }
}
