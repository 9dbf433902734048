//! A small hand-built trace with a use-after-free and a guard corruption at known places.

use crate::events::{free, interleaved, op_begin};
use ttsan_events::{
    Arch, BufferAlloc, CaptureStart, CbAlloc, CoreCoord, CoreRange, DeviceSel, Digest, Event, Geometry, GuardDigest,
    Layout, MeshDesc, Role, ShardSpec, Space, Unit, Write,
};

/// A buffer name that is also markup: the page must show it as text.
pub const HOSTILE_NAME: &str = "<script>alert(1)</script>";
/// A name that tries to close the data's script element and run a handler.
const HOSTILE_CLOSER: &str = "</script><img src=x onerror=\"window.__ttsan_pwned=1\">";

const DRAM_PAGE: u64 = 2048;
const OPS: u64 = 12;
/// The op whose run corrupts `layer1.attn.sinks` on chip 2.
const CORRUPTING_OP: u64 = 9;
/// The op that writes to the freed CCL scratch on chip 1.
const STALE_WRITER_OP: u64 = 5;
const OP_NAMES: [&str; 4] = ["ttnn.matmul", "ttnn.experimental.all_gather_async", "ttnn.softmax", "ttnn.add"];

/// The scenario on a 2x2 Wormhole B0 mesh.
///
/// - `layer0.attn.sinks` and `layer1.attn.sinks` are guarded; after op #9 a page of
///   `layer1.attn.sinks` on chip 2 changes although op #9 does not write it (guard corruption);
/// - `ccl.all_gather.scratch` lives on chip 1 from op #1 to op #3; op #5 writes to its stale
///   address, where a newer activation now lives (use-after-free).
///
/// With `hostile`, some names and the command are HTML/script markup, to test escaping.
pub fn scenario(hostile: bool) -> Vec<Event> {
    let geometry = Geometry::mock(Arch::WormholeB0, 4).unwrap_or_else(|_| Geometry::wormhole_b0());
    let base = geometry.dram_unreserved_base.next_multiple_of(4096);
    let l1_top = geometry.l1_size - geometry.l1_small_size;
    let cb_base = geometry.l1_unreserved_base;
    let banks = u64::from(geometry.dram_banks);
    let command = if hostile { format!("hand-built {HOSTILE_NAME}") } else { "hand-built scenario".to_string() };
    let mut ev = vec![Event::CaptureStart(CaptureStart {
        producer: "ttsan-viz scenario".into(),
        geometry,
        mesh: MeshDesc::grid(2, 2),
        command,
    })];
    let weights = [
        (1, "layer0.attn.wq", Role::Weight, 64 * 1024),
        (2, "layer0.attn.sinks", Role::Weight, DRAM_PAGE),
        (3, "layer1.attn.wq", Role::Weight, 64 * 1024),
        (4, "layer1.attn.sinks", Role::Weight, DRAM_PAGE),
        (5, "layer0.kv_cache.k", Role::KvCache, 256 * 1024),
        (6, "layer1.kv_cache.k", Role::KvCache, 256 * 1024),
        (7, "ccl.global_semaphore", Role::Semaphore, 32),
    ];
    let mut addr = base;
    let mut sinks = Vec::new();
    for (id, name, role, per_bank) in weights {
        ev.push(alloc(id, None, Space::Dram, addr, per_bank * banks, name, role, None));
        if name.ends_with("sinks") {
            sinks.push(id);
        }
        addr += per_bank.next_multiple_of(4096);
    }
    let pages = |salt: u8| -> Vec<Digest> { (0..banks as u8).map(|p| [p ^ salt; 16]).collect() };
    for &id in &sinks {
        ev.push(Event::GuardRegister { buffer: id, reason: "role=weight name=*sinks".into() });
        for device in 0..4 {
            ev.push(digest(id, device, None, pages(0)));
        }
    }
    let act_base = base + (16 << 20);
    let scratch_addr = act_base + (64 << 20);
    let cores = CoreRange::new(CoreCoord::new(0, 0), CoreCoord::new(3, 3));
    let mut next_id = 100;
    let mut prev_act: Option<u64> = None;
    for op in 0..OPS {
        let layer = op % 2;
        ev.push(begin(op, OP_NAMES[(op % 4) as usize]));
        for (k, cb) in ["cb_in0", "cb_out0"].iter().enumerate() {
            ev.push(Event::CbAlloc(CbAlloc {
                id: next_id,
                device: None,
                cores: vec![cores],
                address: cb_base + k as u64 * 32 * 1024,
                size: 32 * 1024,
                globally_allocated: false,
                name: (*cb).into(),
                op: Some(op),
            }));
            next_id += 1;
        }
        let act = next_id;
        next_id += 1;
        let act_name = match (hostile, op) {
            (true, 2) => HOSTILE_NAME.to_string(),
            (true, 3) => HOSTILE_CLOSER.to_string(),
            _ => format!("layer{layer}.attn.out{op}"),
        };
        let act_addr = act_base + (op % 2) * (4 << 20);
        ev.push(alloc(
            act,
            None,
            Space::Dram,
            act_addr,
            1024 * 1024 * banks / 4,
            &act_name,
            Role::Activation,
            Some(op),
        ));
        let l1 = next_id;
        next_id += 1;
        let l1_units: Vec<Unit> = cores.cores().map(Unit::Core).collect();
        let shard = ShardSpec::height(l1_units.clone(), l1_units.len() as u32 * 4, 4);
        ev.push(Event::BufferAlloc(BufferAlloc {
            id: l1,
            device: None,
            space: Space::L1,
            address: l1_top - (op % 3 + 1) * 96 * 1024,
            size: shard.tensor_shape[0] as u64 * 2048,
            page_size: 2048,
            layout: Layout::Sharded(shard),
            name: format!("layer{layer}.mlp.l1_act{op}"),
            role: Role::Activation,
            op: Some(op),
            stack: Some(format!("model.py:{} forward\nttnn/operations.py:88 __call__", 100 + op)),
            stack_id: None,
        }));
        match op {
            1 => ev.push(alloc(
                50,
                Some(1),
                Space::Dram,
                scratch_addr,
                8 * DRAM_PAGE * banks,
                "ccl.all_gather.scratch",
                Role::CclScratch,
                Some(op),
            )),
            3 => ev.push(free(50, Some(op))),
            4 => {
                let name = if hostile { HOSTILE_NAME } else { "layer0.mlp.act4" };
                ev.push(alloc(
                    51,
                    Some(1),
                    Space::Dram,
                    scratch_addr,
                    4 * DRAM_PAGE * banks,
                    name,
                    Role::Activation,
                    Some(op),
                ));
            }
            STALE_WRITER_OP => ev.push(Event::Write(Write {
                device: 1,
                space: Space::Dram,
                unit: Unit::Bank(4),
                address: scratch_addr + 256,
                len: 512,
                op: Some(op),
            })),
            _ => {}
        }
        if let Some(p) = prev_act.replace(act) {
            ev.push(free(p, Some(op)));
        }
        ev.push(free(l1, Some(op)));
        ev.push(Event::CbDeallocAll { device: None });
        ev.push(Event::OpEnd { index: op });
        for &id in &sinks {
            for device in 0..4 {
                let salt = u8::from(op >= CORRUPTING_OP && device == 2 && id == 4);
                let mut p = pages(0);
                if salt == 1 {
                    p[3] = [0xEE; 16];
                }
                ev.push(digest(id, device, Some(op), p));
            }
        }
    }
    ev.push(Event::CaptureEnd { dropped: 0 });
    ev
}

#[allow(clippy::too_many_arguments)]
fn alloc(
    id: u64,
    device: DeviceSel,
    space: Space,
    address: u64,
    size: u64,
    name: &str,
    role: Role,
    op: Option<u64>,
) -> Event {
    let page_size = if space.is_dram() { DRAM_PAGE } else { 2048 };
    Event::BufferAlloc(BufferAlloc { device, ..interleaved(id, space, address, size, page_size, name, role, op) })
}

fn begin(index: u64, name: &str) -> Event {
    Event::OpBegin(op_begin(index, name))
}

fn digest(buffer: u64, device: u32, after_op: Option<u64>, pages: Vec<Digest>) -> Event {
    Event::GuardDigest(GuardDigest { buffer, device, after_op, pages, readable: true })
}
