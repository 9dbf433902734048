//! Bytes in use over time: per chip and space, per L1 core, and sampled per op for the plots.

/// The highest usage seen, and when.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Peak {
    /// Bytes in use at the peak.
    pub bytes: u64,
    /// Map time of the peak.
    pub t: u32,
    /// Op row running at the peak, or -1.
    pub op: i32,
}

/// Bytes in use per space, summed over chips, at the end of one top-level op.
///
/// Each value is the maximum over the op, not the value at its end, so a buffer allocated and
/// freed inside one op still shows in the plot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Map time the sample was taken.
    pub t: u32,
    /// Bytes per space, in [`ttsan_events::Space::ALL`] order.
    pub bytes: [u64; 4],
}

/// Which bytes of one chip an allocation takes, as the usage counters need them.
#[derive(Debug, Clone)]
pub enum CoreBytes {
    /// The same bytes on every L1 core.
    Every(u64),
    /// Bytes on some cores, by L1 core slot.
    Some(Vec<(usize, u64)>),
    /// Not an L1 allocation.
    NotL1,
}

/// Running usage counters.
#[derive(Debug, Clone, Default)]
pub struct Usage {
    in_use: Vec<[u64; 4]>,
    peaks: Vec<[Peak; 4]>,
    core_in_use: Vec<Vec<u64>>,
    core_peak: Vec<u64>,
    sum: [u64; 4],
    sum_peak: [u64; 4],
    window: [u64; 4],
    samples: Vec<Sample>,
}

impl Usage {
    /// Counters for `chips` chips with `cores` L1 cores each.
    pub fn new(chips: usize, cores: usize) -> Self {
        Usage {
            in_use: vec![[0; 4]; chips],
            peaks: vec![[Peak::default(); 4]; chips],
            core_in_use: vec![vec![0; cores]; chips],
            core_peak: vec![0; cores],
            ..Usage::default()
        }
    }

    /// An allocation of `bytes` per chip in space `space` on the chip slots `chips` (every chip
    /// when `None`). `t` and `op` date a new peak.
    pub fn alloc(&mut self, chips: Option<usize>, space: usize, bytes: u64, cores: &CoreBytes, t: u32, op: i32) {
        for chip in self.slots(chips) {
            let (Some(cur), Some(peak)) = (self.in_use.get_mut(chip), self.peaks.get_mut(chip)) else {
                continue;
            };
            cur[space] += bytes;
            if cur[space] > peak[space].bytes {
                peak[space] = Peak { bytes: cur[space], t, op };
            }
            self.sum[space] += bytes;
            if let Some(row) = self.core_in_use.get_mut(chip) {
                for_cores(row, cores, |slot, used| {
                    *used += slot.1;
                    if let Some(p) = self.core_peak.get_mut(slot.0) {
                        *p = (*p).max(*used);
                    }
                });
            }
        }
        self.window[space] = self.window[space].max(self.sum[space]);
        self.sum_peak[space] = self.sum_peak[space].max(self.sum[space]);
    }

    /// The matching free of [`Usage::alloc`].
    pub fn free(&mut self, chips: Option<usize>, space: usize, bytes: u64, cores: &CoreBytes) {
        for chip in self.slots(chips) {
            let Some(cur) = self.in_use.get_mut(chip) else { continue };
            cur[space] = cur[space].saturating_sub(bytes);
            self.sum[space] = self.sum[space].saturating_sub(bytes);
            if let Some(row) = self.core_in_use.get_mut(chip) {
                for_cores(row, cores, |slot, used| *used = used.saturating_sub(slot.1));
            }
        }
    }

    /// Closes the current sampling window (the end of a top-level op).
    pub fn sample(&mut self, t: u32) {
        self.samples.push(Sample { t, bytes: self.window });
        self.window = self.sum;
    }

    /// Peak per chip slot and space.
    pub fn peaks(&self) -> &[[Peak; 4]] {
        &self.peaks
    }

    /// Peak bytes per space summed over chips (circular buffers included), in
    /// [`ttsan_events::Space::ALL`] order.
    pub fn mesh_peaks(&self) -> [u64; 4] {
        self.sum_peak
    }

    /// Peak L1 bytes per core slot, the maximum over chips.
    pub fn core_peaks(&self) -> &[u64] {
        &self.core_peak
    }

    /// Samples taken so far.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }

    fn slots(&self, chips: Option<usize>) -> std::ops::Range<usize> {
        match chips {
            Some(c) => c..c.saturating_add(1),
            None => 0..self.in_use.len(),
        }
    }
}

fn for_cores(row: &mut [u64], cores: &CoreBytes, mut f: impl FnMut((usize, u64), &mut u64)) {
    match cores {
        CoreBytes::Every(bytes) => {
            for (slot, used) in row.iter_mut().enumerate() {
                f((slot, *bytes), used);
            }
        }
        CoreBytes::Some(list) => {
            for &(slot, bytes) in list {
                if let Some(used) = row.get_mut(slot) {
                    f((slot, bytes), used);
                }
            }
        }
        CoreBytes::NotL1 => {}
    }
}

#[cfg(test)]
mod tests {
    use super::{CoreBytes, Usage};

    #[test]
    fn peaks_and_windowed_samples() {
        let mut u = Usage::new(2, 3);
        u.alloc(None, 0, 100, &CoreBytes::NotL1, 1, 0);
        u.alloc(Some(1), 1, 10, &CoreBytes::Some(vec![(2, 10)]), 2, 0);
        u.alloc(Some(0), 1, 30, &CoreBytes::Every(10), 3, 1);
        u.free(Some(0), 1, 30, &CoreBytes::Every(10));
        u.sample(4);
        u.sample(5);
        assert_eq!(u.peaks()[0][0].bytes, 100);
        assert_eq!(u.peaks()[1][0].bytes, 100);
        assert_eq!(u.peaks()[0][1].bytes, 30);
        assert_eq!(u.peaks()[0][1].t, 3);
        assert_eq!(u.core_peaks(), &[10, 10, 10]);
        assert_eq!(u.mesh_peaks(), [200, 40, 0, 0]);
        // The window keeps the peak inside the op even though the buffer is gone at its end.
        assert_eq!(u.samples()[0].bytes[1], 40);
        assert_eq!(u.samples()[1].bytes[1], 10);
        assert_eq!(u.samples()[1].bytes[0], 200);
    }
}
