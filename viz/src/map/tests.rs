//! How events become rows: frees, double frees, circular-buffer release, events before the start.

use super::{MapData, ALL_CHIPS, NO_OP, OPEN};
use ttsan_events::{
    Arch, BufferAlloc, BufferFree, CaptureStart, CbAlloc, CoreCoord, CoreRange, Event, Geometry, Layout, MeshDesc,
    OpBegin, Role, Space,
};

fn start() -> Event {
    Event::CaptureStart(CaptureStart {
        producer: "t".into(),
        geometry: Geometry::mock(Arch::WormholeB0, 2).unwrap(),
        mesh: MeshDesc::grid(1, 2),
        command: "t".into(),
    })
}

fn dram(id: u64, device: Option<u32>) -> Event {
    Event::BufferAlloc(BufferAlloc {
        id,
        device,
        space: Space::Dram,
        address: 0x10_0000,
        size: 12 * 2048,
        page_size: 2048,
        layout: Layout::Interleaved,
        name: format!("b{id}"),
        role: Role::Weight,
        op: None,
        stack: None,
        stack_id: None,
    })
}

fn cb(id: u64, device: Option<u32>) -> Event {
    Event::CbAlloc(CbAlloc {
        id,
        device,
        cores: vec![CoreRange::single(CoreCoord::new(0, 0))],
        address: 0x2_0000,
        size: 1024,
        globally_allocated: false,
        name: "cb".into(),
        op: None,
    })
}

fn free(id: u64) -> Event {
    Event::BufferFree(BufferFree { id, op: None, stack: Some("free site".into()), stack_id: None })
}

#[test]
fn rows_follow_frees_and_releases() {
    let mut m = MapData::new();
    m.feed(&dram(99, None)); // before the capture: ignored
    for e in [
        start(),
        Event::OpBegin(OpBegin {
            index: 7,
            name: "op".into(),
            devices: vec![],
            args: String::new(),
            inputs: vec![],
            outputs: vec![],
            scratch: vec![],
            parent: None,
        }),
        dram(1, None),
        dram(2, Some(1)),
        cb(3, Some(0)),
        cb(4, Some(1)),
        free(1),
        free(1),  // a double free keeps the first
        free(42), // unknown: nothing to close
        Event::CbDeallocAll { device: Some(0) },
        Event::OpEnd { index: 7 },
    ] {
        m.feed(&e);
    }
    assert_eq!(m.ignored_events(), 1);
    let a = m.allocs();
    assert_eq!(a.len(), 4);
    assert_eq!(a.chip, vec![ALL_CHIPS, 1, 0, 1]);
    assert_eq!(a.t0, vec![2, 3, 4, 5]);
    // b1 freed at t=6 (the double free at t=7 changes nothing), the device-0 CB released at t=9.
    assert_eq!(a.t1, vec![6, OPEN, 9, OPEN]);
    assert_eq!(a.aop, vec![0, 0, 0, 0], "allocated while op #7 (row 0) ran");
    assert_eq!(a.fop[0], 0);
    assert_eq!(a.fop[1], NO_OP);
    assert_eq!(m.strings().get(a.fstack[0]), "free site");
    assert_eq!(m.ops().t0, vec![1]);
    assert_eq!(m.ops().t1, vec![10]);
    assert_eq!(m.usage().samples().len(), 1, "one sample per top-level op");
    assert_eq!(m.row_of(2), Some(1));
    assert_eq!(m.op_row(7), Some(0));
    assert_eq!(m.end_time(), 11);
}
