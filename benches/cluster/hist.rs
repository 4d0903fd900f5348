//! The nodes' latency histograms, read from the Prometheus text of
//! `/metrics`: buckets summed over nodes, the difference between two
//! readings, and quantiles interpolated inside a bucket (as Prometheus'
//! `histogram_quantile` does).

/// Cumulative bucket counts by upper bound (seconds), in order; the last
/// bound is +Inf.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Buckets(pub Vec<(f64, u64)>);

impl Buckets {
    /// The buckets of histogram `name` (e.g. `peerbook_take_round_trip_seconds`).
    pub fn parse(metrics: &str, name: &str) -> Buckets {
        let prefix = format!("{name}_bucket{{le=\"");
        let mut out = Vec::new();
        for line in metrics.lines() {
            let Some(rest) = line.strip_prefix(&prefix) else {
                continue;
            };
            let Some((le, count)) = rest.split_once("\"}") else {
                continue;
            };
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap_or(f64::INFINITY)
            };
            let count = count.trim().parse().unwrap_or(0);
            out.push((le, count));
        }
        Buckets(out)
    }

    pub fn count(&self) -> u64 {
        self.0.last().map_or(0, |b| b.1)
    }

    /// Bucket by bucket, `self + other` (same bounds).
    pub fn plus(&self, other: &Buckets) -> Buckets {
        if self.0.is_empty() {
            return other.clone();
        }
        Buckets(
            self.0
                .iter()
                .zip(&other.0)
                .map(|(a, b)| (a.0, a.1 + b.1))
                .collect(),
        )
    }

    /// Bucket by bucket, `self - earlier` (same bounds).
    pub fn minus(&self, earlier: &Buckets) -> Buckets {
        if earlier.0.is_empty() {
            return self.clone();
        }
        Buckets(
            self.0
                .iter()
                .zip(&earlier.0)
                .map(|(a, b)| (a.0, a.1.saturating_sub(b.1)))
                .collect(),
        )
    }

    /// The `q` quantile in milliseconds, linear inside its bucket; `None`
    /// without samples. In the +Inf bucket: its lower bound.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = q * total as f64;
        let (mut lower, mut below) = (0.0, 0u64);
        for &(le, cum) in &self.0 {
            if cum as f64 >= rank && cum > below {
                if le.is_infinite() {
                    return Some(lower * 1000.0);
                }
                let within = (rank - below as f64) / (cum - below) as f64;
                return Some((lower + (le - lower) * within.clamp(0.0, 1.0)) * 1000.0);
            }
            lower = le;
            below = cum;
        }
        Some(lower * 1000.0)
    }
}

/// The value of a sample line `name value` of Prometheus text.
pub fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}
