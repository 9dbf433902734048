//! The bytes of one chip, held sparsely: only chunks that were written exist.
//!
//! A mesh of 32 chips with gigabytes of DRAM each must cost memory in proportion to the bytes
//! written, so every DRAM bank and every core's L1 is a map of fixed-size chunks; reading a
//! chunk that was never written yields zeros, as freshly reset device memory would in a test.

use rustc_hash::FxHashMap as HashMap;
use ttsan_events::{Space, Unit};

/// Bytes per chunk: two bf16 tiles, so a tile write touches at most two chunks.
pub const CHUNK: u64 = 4096;

/// Which physical memory a space lives in: DRAM and the trace region share the DRAM banks,
/// L1 and L1_SMALL share a core's SRAM.
fn plane(space: Space) -> u8 {
    u8::from(!space.is_dram())
}

type Key = (u8, u32, u64);

type Chunk = Box<[u8; CHUNK as usize]>;

/// The memory of one chip.
#[derive(Debug, Default)]
pub struct ChipMemory {
    chunks: HashMap<Key, Chunk>,
    /// While an op runs under canaries: each chunk's bytes as they were before the op first
    /// wrote it (`None`: it did not exist, so it was zeros). Canary digests need the bytes from
    /// before the op; keeping only the chunks the op touched gives the same digests as reading
    /// every watched page before the op, at the cost of one copy per touched chunk.
    journal: Option<HashMap<Key, Option<Chunk>>>,
}

impl ChipMemory {
    /// An empty (all-zero) chip.
    pub fn new() -> Self {
        ChipMemory::default()
    }

    /// Copies `data` to `address` of `unit`. Bounds are the caller's business (see
    /// [`crate::Mesh`]), because only it knows the geometry.
    pub fn write(&mut self, space: Space, unit: Unit, address: u64, data: &[u8]) {
        let (p, u) = (plane(space), unit.key());
        let mut done = 0usize;
        while done < data.len() {
            let at = address + done as u64;
            let (chunk, offset) = (at / CHUNK, (at % CHUNK) as usize);
            let n = (CHUNK as usize - offset).min(data.len() - done);
            if let Some(journal) = &mut self.journal {
                journal.entry((p, u, chunk)).or_insert_with(|| self.chunks.get(&(p, u, chunk)).cloned());
            }
            let page = self.chunks.entry((p, u, chunk)).or_insert_with(|| Box::new([0u8; CHUNK as usize]));
            page[offset..offset + n].copy_from_slice(&data[done..done + n]);
            done += n;
        }
    }

    /// Fills `out` from `address` of `unit`.
    pub fn read(&self, space: Space, unit: Unit, address: u64, out: &mut [u8]) {
        let (p, u) = (plane(space), unit.key());
        let mut done = 0usize;
        while done < out.len() {
            let at = address + done as u64;
            let (chunk, offset) = (at / CHUNK, (at % CHUNK) as usize);
            let n = (CHUNK as usize - offset).min(out.len() - done);
            match self.chunks.get(&(p, u, chunk)) {
                Some(page) => out[done..done + n].copy_from_slice(&page[offset..offset + n]),
                None => out[done..done + n].fill(0),
            }
            done += n;
        }
    }

    /// Calls `f` on the bytes of `[address, address + len)` of `unit` in order, chunk by chunk,
    /// without copying them (never-written chunks read as zeros).
    pub fn visit(&self, space: Space, unit: Unit, address: u64, len: u64, f: impl FnMut(&[u8])) {
        self.walk(space, unit, address, len, |key| self.chunks.get(&key), f);
    }

    /// Hands `f` the bytes of `[address, address + len)` chunk by chunk, from the chunk `pick`
    /// chooses for each key (zeros where it has none).
    fn walk<'m>(
        &'m self,
        space: Space,
        unit: Unit,
        address: u64,
        len: u64,
        pick: impl Fn(Key) -> Option<&'m Chunk>,
        mut f: impl FnMut(&[u8]),
    ) {
        const ZEROS: [u8; CHUNK as usize] = [0u8; CHUNK as usize];
        let (p, u) = (plane(space), unit.key());
        let mut done = 0u64;
        while done < len {
            let at = address + done;
            let (chunk, offset) = (at / CHUNK, (at % CHUNK) as usize);
            let n = (CHUNK - offset as u64).min(len - done) as usize;
            match pick((p, u, chunk)) {
                Some(page) => f(&page[offset..offset + n]),
                None => f(&ZEROS[offset..offset + n]),
            }
            done += n as u64;
        }
    }

    /// Starts remembering the bytes every chunk held before its first write from now on
    /// (forgetting any earlier journal).
    pub fn start_journal(&mut self) {
        self.journal = Some(HashMap::default());
    }

    /// Stops the journal and drops what it kept.
    pub fn stop_journal(&mut self) {
        self.journal = None;
    }

    /// As [`ChipMemory::visit`], but the bytes as they were when the journal started.
    pub fn visit_before(&self, space: Space, unit: Unit, address: u64, len: u64, f: impl FnMut(&[u8])) {
        let pick = |key: Key| match self.journal.as_ref().and_then(|j| j.get(&key)) {
            Some(kept) => kept.as_ref(),
            None => self.chunks.get(&key),
        };
        self.walk(space, unit, address, len, pick, f);
    }

    /// Bytes of host memory the chip holds (chunks touched times chunk size).
    pub fn resident_bytes(&self) -> u64 {
        self.chunks.len() as u64 * CHUNK
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_across_chunks_read_back_and_cost_only_what_they_touch() {
        let mut m = ChipMemory::new();
        let data: Vec<u8> = (0..6000u32).map(|i| i as u8).collect();
        m.write(Space::Dram, Unit::Bank(3), 1 << 29, &data);
        let mut back = vec![0u8; 6000];
        m.read(Space::Dram, Unit::Bank(3), 1 << 29, &mut back);
        assert_eq!(back, data);
        assert_eq!(m.resident_bytes(), 2 * CHUNK);
        // Another bank, and L1 at the same address, are separate and still zero.
        m.read(Space::Dram, Unit::Bank(4), 1 << 29, &mut back);
        assert!(back.iter().all(|&b| b == 0));
        // The trace region is the same DRAM as DRAM buffers.
        let mut t = vec![0u8; 4];
        m.read(Space::Trace, Unit::Bank(3), (1 << 29) + 1, &mut t);
        assert_eq!(t, [1, 2, 3, 4]);
    }

    #[test]
    fn the_journal_keeps_the_bytes_from_before_the_first_write() {
        let mut m = ChipMemory::new();
        let b = Unit::Bank(0);
        m.write(Space::Dram, b, 100, &[1, 2, 3]);
        m.start_journal();
        m.write(Space::Dram, b, 101, &[9]);
        m.write(Space::Dram, b, 102, &[8]);
        m.write(Space::Dram, b, 2 * CHUNK, &[7]);
        let collect = |m: &ChipMemory, before: bool| {
            let mut out = Vec::new();
            let mut f = |bytes: &[u8]| out.extend_from_slice(bytes);
            if before {
                m.visit_before(Space::Dram, b, 100, 3, &mut f);
                m.visit_before(Space::Dram, b, 2 * CHUNK, 1, &mut f);
            } else {
                m.visit(Space::Dram, b, 100, 3, &mut f);
                m.visit(Space::Dram, b, 2 * CHUNK, 1, &mut f);
            }
            out
        };
        assert_eq!(collect(&m, true), [1, 2, 3, 0], "the first write's pre-image; a new chunk was zeros");
        assert_eq!(collect(&m, false), [1, 9, 8, 7]);
        m.stop_journal();
        assert_eq!(collect(&m, true), collect(&m, false), "without a journal the bytes are today's");
    }
}
