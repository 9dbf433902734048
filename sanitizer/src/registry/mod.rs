//! The live allocations of a whole mesh and the quarantine of recent frees.

mod ids;
mod quarantine;
mod space_map;

pub use quarantine::Quarantine;
pub use space_map::{Hit, Hits, SpaceMap};

use crate::buffer::BufferInfo;
use crate::model::{footprint, Footprint};
use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};
use std::ops::Range;
use ttsan_events::{DeviceSel, Geometry, Space, Unit};

/// What happened to a free request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FreeOutcome {
    /// The allocation was live and is now quarantined.
    Freed(BufferInfo),
    /// The id was freed before (the earlier free, when still quarantined).
    DoubleFree(Option<BufferInfo>),
    /// The id was never allocated.
    Unknown,
}

/// Every live allocation of a mesh, indexed by place, plus recent frees.
pub struct Registry {
    geometry: Geometry,
    devices: Vec<u32>,
    live: HashMap<u64, (BufferInfo, Footprint)>,
    live_maps: HashMap<(DeviceSel, Space), SpaceMap>,
    freed_maps: HashMap<(DeviceSel, Space), SpaceMap>,
    quarantine: Quarantine,
    freed_footprints: HashMap<u64, Footprint>,
    ever_freed: HashSet<u64>,
    cbs: Vec<u64>,
}

impl Registry {
    /// An empty registry for chips of `geometry` with the given device ids.
    pub fn new(geometry: Geometry, devices: Vec<u32>, quarantine: usize) -> Self {
        Registry {
            geometry,
            devices,
            live: HashMap::default(),
            live_maps: HashMap::default(),
            freed_maps: HashMap::default(),
            quarantine: Quarantine::new(quarantine),
            freed_footprints: HashMap::default(),
            ever_freed: HashSet::default(),
            cbs: Vec::new(),
        }
    }

    /// The chip geometry.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// Device ids of the mesh.
    pub fn devices(&self) -> &[u32] {
        &self.devices
    }

    /// Registers a live allocation; returns the live allocations whose bytes it shares.
    pub fn insert(&mut self, info: BufferInfo) -> Vec<u64> {
        let fp = footprint(&info, &self.geometry);
        let overlaps = self.overlapping(info.device, info.space, &fp, info.id);
        self.live_maps.entry((info.device, info.space)).or_default().add(&fp, info.id);
        if info.is_cb() {
            self.cbs.push(info.id);
        }
        self.live.insert(info.id, (info, fp));
        overlaps
    }

    fn overlapping(&self, device: DeviceSel, space: Space, fp: &Footprint, except: u64) -> Vec<u64> {
        let mut hits = Hits::new();
        for key in self.related_layers(device, space) {
            if let Some(map) = self.live_maps.get(&key) {
                map.query_footprint(fp, &mut hits);
            }
        }
        let mut ids: Vec<u64> = hits.into_iter().map(|h| h.id).filter(|&id| id != except).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// The layers whose allocations can share bytes with one on `device`: a mesh allocation meets
    /// every chip's own allocations, a chip's allocation meets the mesh's.
    fn related_layers(&self, device: DeviceSel, space: Space) -> Vec<(DeviceSel, Space)> {
        match device {
            None => std::iter::once((None, space)).chain(self.devices.iter().map(|&d| (Some(d), space))).collect(),
            Some(d) => vec![(None, space), (Some(d), space)],
        }
    }

    /// Frees `id`, moving it into the quarantine.
    pub fn free(&mut self, id: u64, op: Option<u64>, stack: Option<&str>) -> FreeOutcome {
        let Some((mut info, fp)) = self.live.remove(&id) else {
            if self.ever_freed.contains(&id) {
                return FreeOutcome::DoubleFree(self.quarantine.get(id).cloned());
            }
            return FreeOutcome::Unknown;
        };
        if let Some(map) = self.live_maps.get_mut(&(info.device, info.space)) {
            map.remove(&fp, id);
        }
        info.freed = true;
        info.free_op = op;
        info.free_stack = stack.map(Into::into);
        self.ever_freed.insert(id);
        if info.is_cb() {
            // Circular buffers are program-scoped and recycled constantly; quarantining them
            // would crowd out the buffers whose stale addresses matter.
            self.cbs.retain(|&c| c != id);
            return FreeOutcome::Freed(info);
        }
        self.freed_maps.entry((info.device, info.space)).or_default().add(&fp, id);
        self.freed_footprints.insert(id, fp);
        if let Some(evicted) = self.quarantine.push(info.clone()) {
            if let Some(efp) = self.freed_footprints.remove(&evicted.id) {
                if let Some(map) = self.freed_maps.get_mut(&(evicted.device, evicted.space)) {
                    map.remove(&efp, evicted.id);
                }
            }
        }
        FreeOutcome::Freed(info)
    }

    /// Releases the circular buffers on `device` (all chips for `None`), as a new program does.
    pub fn release_cbs(&mut self, device: DeviceSel, op: Option<u64>) -> Vec<BufferInfo> {
        let ids: Vec<u64> = self
            .cbs
            .iter()
            .copied()
            .filter(|id| {
                self.live.get(id).is_some_and(|(b, _)| device.is_none() || b.device.is_none() || b.device == device)
            })
            .collect();
        ids.into_iter()
            .filter_map(|id| match self.free(id, op, None) {
                FreeOutcome::Freed(b) => Some(b),
                _ => None,
            })
            .collect()
    }

    /// A live allocation.
    pub fn live(&self, id: u64) -> Option<&BufferInfo> {
        self.live.get(&id).map(|(b, _)| b)
    }

    /// A live or quarantined allocation.
    pub fn get(&self, id: u64) -> Option<&BufferInfo> {
        self.live(id).or_else(|| self.quarantine.get(id))
    }

    /// The footprint of a live or quarantined allocation.
    pub fn footprint_of(&self, id: u64) -> Option<&Footprint> {
        self.live.get(&id).map(|(_, f)| f).or_else(|| self.freed_footprints.get(&id))
    }

    /// Live allocations.
    pub fn live_buffers(&self) -> impl Iterator<Item = &BufferInfo> {
        self.live.values().map(|(b, _)| b)
    }

    /// Number of live allocations.
    pub fn live_count(&self) -> usize {
        self.live.len()
    }

    /// The quarantine.
    pub fn quarantine(&self) -> &Quarantine {
        &self.quarantine
    }

    /// Live allocations owning bytes of `range` on `unit` of `space` on chip `device`.
    pub fn live_at(&self, device: u32, space: Space, unit: Unit, range: Range<u64>) -> Hits {
        Self::query(&self.live_maps, device, space, unit, range)
    }

    /// Quarantined allocations that owned bytes of `range` on `unit` of `space` on chip `device`,
    /// most recently freed first.
    pub fn freed_at(&self, device: u32, space: Space, unit: Unit, range: Range<u64>) -> Hits {
        let mut hits = Self::query(&self.freed_maps, device, space, unit, range);
        hits.sort_by_key(|h| std::cmp::Reverse(self.quarantine.free_seq(h.id).unwrap_or(0)));
        hits
    }

    fn query(
        maps: &HashMap<(DeviceSel, Space), SpaceMap>,
        device: u32,
        space: Space,
        unit: Unit,
        range: Range<u64>,
    ) -> Hits {
        let mut hits = Hits::new();
        for key in [(None, space), (Some(device), space)] {
            if let Some(map) = maps.get(&key) {
                map.query(unit, range.clone(), &mut hits);
            }
        }
        hits
    }
}
