//! The safe API against the real library. tt-metal allows one mesh and one mock
//! configuration per process, so this file holds a single test that walks through everything
//! in order.

use std::io::Write;
use tt_metal_sys::{Arch, BufferKind, MockMesh, RunMode, RuntimeRoot, TtError};

#[test]
fn one_chip_wormhole_end_to_end() {
    let root = RuntimeRoot::locate(None);
    if let Err(e) = root.check() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true but the tt-metal library is unusable: {e}");
        }
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: one_chip_wormhole_end_to_end because the tt-metal library is unusable: {e}"
        );
        return;
    }
    let caller = tempfile::tempdir().unwrap();
    std::env::set_current_dir(caller.path()).unwrap();

    let mut mesh = MockMesh::open(&root, Arch::WormholeB0, 1).unwrap();
    // One mesh per process: a second open is refused, not a crash.
    assert!(matches!(MockMesh::open(&root, Arch::WormholeB0, 1), Err(TtError::Process(_))));
    assert_ne!(std::env::current_dir().unwrap(), caller.path(), "the mesh must not run in the caller's directory");

    let info = mesh.info().clone();
    assert_eq!((info.num_devices, info.rows, info.cols), (1, 1, 1));
    let f = mesh.facts().clone();
    assert_eq!((f.dram.num_banks, f.dram.alignment, f.dram_base), (12, 32, 0x10_0040));
    assert_eq!((f.l1.num_banks, f.l1.alignment, f.l1_base, f.worker_l1_size), (64, 16, 0x19d60, 0x16_e000));
    assert_eq!(f.l1_small.bank_size, 0);
    assert_eq!(f.dram_bank_offsets.iter().filter(|&&o| o == 1 << 30).count(), 6);
    let mut cores = f.l1_bank_cores.clone();
    cores.sort_unstable();
    cores.dedup();
    assert_eq!(cores.len(), 64, "every L1 bank is a distinct core");
    assert!(cores.iter().all(|&(x, y)| x < 8 && y < 8));
    assert_ne!(f.l1_bank_cores[..8], cores[..8], "tt-metal shuffles bank ids");

    mesh.begin_graph_capture(RunMode::Normal).unwrap();
    let a = mesh.allocate(BufferKind::Dram, 128 * 1024, 2048).unwrap();
    assert_eq!(a.address(), 0x10_0040);
    let i = a.info();
    assert_eq!((i.size, i.page_size, i.num_pages, i.aligned_size_per_bank), (128 * 1024, 2048, 64, 12288));
    assert_eq!(i.kind, Some(BufferKind::Dram));
    assert!(i.is_allocated);
    let l = mesh.allocate(BufferKind::L1, 32 * 1024, 2048).unwrap();
    assert_eq!(l.address(), 0x16_d800);
    assert_ne!(l.info().unique_id, a.info().unique_id);

    let err = mesh.allocate(BufferKind::L1Small, 4096, 2048).unwrap_err();
    assert!(err.message.contains("L1_SMALL"), "{err}");
    assert!(!err.summary().contains("backtrace"));
    let err = mesh.allocate(BufferKind::Dram, 1 << 40, 2048).unwrap_err();
    assert!(err.is_out_of_memory(), "{err}");

    mesh.free(a.clone()).unwrap();
    assert!(matches!(mesh.free(a), Err(TtError::Argument(_))), "a handle frees once");
    let b = mesh.allocate(BufferKind::Dram, 128 * 1024, 2048).unwrap();
    assert_eq!(b.address(), 0x10_0040, "the freed block is reused");

    // Relative paths are the caller's, even though the mesh works elsewhere.
    mesh.end_graph_capture_to_file(std::path::Path::new("cap.json")).unwrap();
    let text = std::fs::read_to_string(caller.path().join("cap.json")).unwrap();
    assert!(text.contains("buffer_allocate") && text.contains("1048640"));

    mesh.close().unwrap();
    assert_eq!(std::env::current_dir().unwrap(), caller.path(), "close restores the working directory");
    assert!(!caller.path().join("generated").exists());
}
