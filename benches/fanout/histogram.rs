//! A fixed-size latency histogram with log-linear buckets (32 sub-buckets per power of two).
//!
//! Every player owns one, so it must be small and recording must be a few instructions:
//! values below 64 µs get exact buckets, larger values land in a bucket whose width is at most
//! 1/32 of its lower bound, so any quantile read back is within ~3 % of the true value.
//! Histograms merge by adding counts, which is how the per-player ones become one report.

/// Exact buckets for 0..64, then 32 per doubling up to 2^40 µs (about 12 days).
const BUCKETS: usize = 64 + 35 * 32;

/// Counts of microsecond values.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u32; BUCKETS]>,
    total: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: Box::new([0; BUCKETS]),
            total: 0,
            max: 0,
        }
    }
}

fn index(v: u64) -> usize {
    if v < 64 {
        return v as usize;
    }
    let msb = 63 - v.leading_zeros() as usize;
    let shift = msb - 5;
    let i = 64 + (shift - 1) * 32 + ((v >> shift) as usize - 32);
    i.min(BUCKETS - 1)
}

/// The middle of bucket `i`, the value reported for quantiles that fall into it.
fn value_of(i: usize) -> u64 {
    if i < 64 {
        return i as u64;
    }
    let shift = (i - 64) / 32 + 1;
    let sub = ((i - 64) % 32 + 32) as u64;
    (sub << shift) + (1u64 << shift) / 2
}

impl Histogram {
    /// Records one value in microseconds.
    pub fn record(&mut self, us: u64) {
        let i = index(us);
        self.counts[i] = self.counts[i].saturating_add(1);
        self.total += 1;
        self.max = self.max.max(us);
    }

    /// Adds the counts of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a = a.saturating_add(*b);
        }
        self.total += other.total;
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// Largest recorded value, exact.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1), or 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            seen += u64::from(*c);
            if seen >= rank {
                return value_of(i).min(self.max);
            }
        }
        self.max
    }
}
