//! The chip geometry of a capture, from the report's `devices[]` when it has one.

use crate::params::Params;
use serde_json::Value;
use ttsan_events::{l1_bank_cores, Arch, CoreCoord, Geometry, MeshDesc};

/// The architecture a `devices[].arch` string names (`WORMHOLE_B0`, `BLACKHOLE`, any case).
pub fn arch_from_name(name: &str) -> Option<Arch> {
    let lower = name.trim().to_ascii_lowercase();
    if lower.starts_with("wormhole") {
        Some(Arch::WormholeB0)
    } else if lower.starts_with("blackhole") {
        Some(Arch::Blackhole)
    } else {
        None
    }
}

/// The chips a report's `cluster_descriptor` (UMD YAML, as one string) lists under `arch:`,
/// with their architecture names, in the order listed.
pub fn cluster_chips(descriptor: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let mut in_arch = false;
    for line in descriptor.lines() {
        if !line.starts_with(' ') && !line.trim().is_empty() {
            in_arch = line.trim_end() == "arch:";
            continue;
        }
        if !in_arch {
            continue;
        }
        if let Some((id, arch)) = line.trim().split_once(':') {
            if let Ok(id) = id.trim().parse::<u32>() {
                out.push((id, arch.trim().to_string()));
            }
        }
    }
    out
}

/// The single-chip defaults of an architecture.
pub fn default_geometry(arch: Arch) -> Geometry {
    match arch {
        Arch::WormholeB0 => Geometry::wormhole_b0(),
        Arch::Blackhole => Geometry::blackhole(),
    }
}

/// Geometry and mesh from the report's `devices` list and `cluster_descriptor`, starting from
/// `fallback_arch`'s defaults for anything they do not say. Returns notes about what had to be
/// assumed.
pub fn from_report(
    devices: Option<&Value>,
    cluster_descriptor: Option<&str>,
    fallback_arch: Arch,
) -> (Geometry, MeshDesc, Vec<String>) {
    let chips = cluster_descriptor.map(cluster_chips).unwrap_or_default();
    let fallback_arch = chips.first().and_then(|(_, a)| arch_from_name(a)).unwrap_or(fallback_arch);
    let (g, mesh, notes) = from_devices(devices, fallback_arch);
    // A mesh reports one `devices` entry (the mesh device); the descriptor lists every chip.
    if chips.len() > mesh.len() {
        let mut ids: Vec<u32> = chips.iter().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        let mesh = MeshDesc { rows: 1, cols: ids.len() as u32, device_ids: ids };
        return (g, mesh, notes);
    }
    (g, mesh, notes)
}

/// Geometry and mesh from the report's `devices` list alone.
pub fn from_devices(devices: Option<&Value>, fallback_arch: Arch) -> (Geometry, MeshDesc, Vec<String>) {
    let mut notes = Vec::new();
    let list: Vec<&Value> = devices.and_then(Value::as_array).map(|a| a.iter().collect()).unwrap_or_default();
    let Some(first) = list.first() else {
        notes.push(format!("capture has no device info: assuming a single {fallback_arch} chip's default geometry"));
        return (default_geometry(fallback_arch), MeshDesc::grid(1, 1), notes);
    };
    let p = Params::new(Some(first));
    let arch = p.str("arch").as_deref().and_then(arch_from_name).unwrap_or_else(|| {
        notes.push(format!("device info names no known arch: assuming {fallback_arch}"));
        fallback_arch
    });
    let mut g = default_geometry(arch);
    if let Ok(n) = p.u64("num_dram_channels") {
        g.dram_banks = n as u32;
    }
    if let Ok(n) = p.u64("dram_size_per_channel") {
        g.dram_bank_size = n;
    }
    if let Ok(n) = p.u64("worker_l1_size") {
        g.l1_size = n;
    }
    if let Ok(n) = p.u64("address_at_first_l1_cb_buffer") {
        g.l1_unreserved_base = n;
    }
    let grid = match (p.u64("num_x_compute_cores"), p.u64("num_y_compute_cores")) {
        (Ok(x), Ok(y)) if x > 0 && y > 0 => Some(CoreCoord::new(x as u16, y as u16)),
        _ => None,
    };
    if let Some(grid) = grid {
        g.worker_grid = grid;
        g.l1_bank_cores = l1_bank_cores(grid);
    }
    if let Ok(banks) = p.u64("l1_num_banks") {
        if banks != u64::from(g.l1_banks()) {
            notes.push(format!(
                "device info says {banks} L1 banks but its compute grid gives {}: bank-to-core map may be off",
                g.l1_banks()
            ));
        }
    }
    let ids: Vec<u32> =
        list.iter().filter_map(|d| Params::new(Some(d)).u64("device_id").ok()).map(|d| d as u32).collect();
    let mesh = if ids.len() == list.len() {
        MeshDesc { rows: 1, cols: ids.len() as u32, device_ids: ids }
    } else {
        MeshDesc::grid(1, list.len() as u32)
    };
    (g, mesh, notes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_report_device_row() {
        let devices = json!([{"arch": "WORMHOLE_B0", "device_id": 0, "num_dram_channels": 12,
            "dram_size_per_channel": 1073741824u64, "worker_l1_size": 1499136, "address_at_first_l1_cb_buffer": 105824,
            "num_x_compute_cores": 8, "num_y_compute_cores": 7, "l1_num_banks": 56}]);
        let (g, mesh, notes) = from_devices(Some(&devices), Arch::Blackhole);
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(g.arch, Arch::WormholeB0);
        assert_eq!((g.dram_banks, g.l1_size, g.l1_unreserved_base), (12, 1499136, 105824));
        assert_eq!(g.l1_banks(), 56);
        assert_eq!(g.l1_bank_cores, l1_bank_cores(CoreCoord::new(8, 7)));
        assert_eq!(mesh.device_ids, vec![0]);
    }

    #[test]
    fn counts_chips_in_the_cluster_descriptor() {
        let desc =
            "arch:\n  0: wormhole_b0\n  1: wormhole_b0\n  2: wormhole_b0\nchips:\n  0:\n    - 1\n  1:\n    - 0\n";
        assert_eq!(cluster_chips(desc).iter().map(|c| c.0).collect::<Vec<_>>(), vec![0, 1, 2]);
        let devices = json!([{"arch": "WORMHOLE_B0", "device_id": 0}]);
        let (_, mesh, _) = from_report(Some(&devices), Some(desc), Arch::WormholeB0);
        assert_eq!(mesh.device_ids, vec![0, 1, 2]);
        let (g, mesh, _) = from_report(None, Some("arch:\n  0: blackhole\n"), Arch::WormholeB0);
        assert_eq!((g.arch, mesh.len()), (Arch::Blackhole, 1));
    }

    #[test]
    fn falls_back_with_a_note() {
        let (g, mesh, notes) = from_devices(None, Arch::Blackhole);
        assert_eq!(g, Geometry::blackhole());
        assert_eq!(mesh.len(), 1);
        assert_eq!(notes.len(), 1);
        let (g, _, notes) = from_devices(Some(&json!([{"arch": "QUASAR"}])), Arch::WormholeB0);
        assert_eq!(g.arch, Arch::WormholeB0);
        assert!(notes[0].contains("no known arch"));
        assert_eq!(arch_from_name("blackhole"), Some(Arch::Blackhole));
    }
}
