//! The learning-rate schedule: linear warm-up, then a cosine down to a floor.
//!
//! ```text
//! lr(s) = peak · (s + 1) / W                                   s < W
//! lr(s) = floor + (peak − floor) · ½(1 + cos(π (s − W) / (S − 1 − W)))   W ≤ s < S
//! ```
//! for steps `s = 0 … S − 1` and `W` warm-up steps, so the last step's rate is the floor.

/// A warm-up-then-cosine schedule over a fixed number of steps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Schedule {
    /// The rate at the end of warm-up.
    pub peak: f64,
    /// The rate at the last step.
    pub floor: f64,
    /// Warm-up steps `W`.
    pub warmup: usize,
    /// All steps `S`.
    pub total: usize,
}

impl Schedule {
    /// The rate at step `s`.
    pub fn lr(&self, s: usize) -> f64 {
        if s < self.warmup {
            return self.peak * (s + 1) as f64 / self.warmup as f64;
        }
        let span = self.total.saturating_sub(1 + self.warmup);
        if span == 0 {
            return self.peak;
        }
        let t = (s - self.warmup).min(span) as f64 / span as f64;
        self.floor + (self.peak - self.floor) * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_peak_midpoint_and_floor() {
        let s = Schedule {
            peak: 1.0,
            floor: 0.1,
            warmup: 4,
            total: 105,
        };
        assert_eq!(s.lr(0), 0.25);
        assert_eq!(s.lr(3), 1.0);
        assert_eq!(s.lr(4), 1.0);
        // Halfway through the cosine (50 of 100 steps), cos(π/2) = 0: midway to the floor.
        assert!((s.lr(54) - 0.55).abs() < 1e-12);
        assert!(
            (s.lr(104) - 0.1).abs() < 1e-12,
            "the last step is at the floor"
        );
    }

    #[test]
    fn single_step_runs_at_the_peak() {
        let s = Schedule {
            peak: 0.5,
            floor: 0.0,
            warmup: 0,
            total: 1,
        };
        assert_eq!(s.lr(0), 0.5);
    }
}
