//! The learning-rate and coefficient schedules both trainers share ([`crate::train`] and
//! [`crate::training`]).

/// A linear learning-rate schedule: warm-up from 0 over `warm_up` steps, then `lr`, then a
/// linear decay to `end` over the last `decay` of `total` steps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LrSchedule {
    pub lr: f64,
    pub warm_up: usize,
    pub decay: usize,
    pub end: f64,
    pub total: Option<usize>,
}

impl LrSchedule {
    /// The learning rate at `step` (0-based).
    pub fn at(&self, step: usize) -> f64 {
        let mut lr = self.lr * warm_up_fraction(self.warm_up, step);
        if let Some(total) = self.total {
            let start = total.saturating_sub(self.decay);
            if self.decay > 0 && step >= start {
                let t = ((step - start + 1) as f64 / self.decay as f64).min(1.0);
                lr = self.lr + (self.end - self.lr) * t;
            }
        }
        lr
    }
}

/// The fraction (0..=1] of a warmed-up quantity in force at `step` (0-based): linear over
/// `warm_up` steps, then 1.
pub(crate) fn warm_up_fraction(warm_up: usize, step: usize) -> f64 {
    if warm_up > 0 && step < warm_up {
        (step + 1) as f64 / warm_up as f64
    } else {
        1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_plateau_and_decay_by_hand() {
        let s = LrSchedule {
            lr: 1.0,
            warm_up: 4,
            decay: 2,
            end: 0.0,
            total: Some(10),
        };
        let got: Vec<f64> = (0..11).map(|i| s.at(i)).collect();
        assert_eq!(
            got,
            [0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5, 0.0, 0.0]
        );
        assert_eq!(warm_up_fraction(0, 0), 1.0);
        assert_eq!(warm_up_fraction(2, 0), 0.5);
        assert_eq!(warm_up_fraction(2, 5), 1.0);
    }
}
