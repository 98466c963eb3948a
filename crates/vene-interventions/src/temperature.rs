//! The temperature of a soft mask (Boundless and sigmoid-mask DAS), settable through a shared
//! reference, and the linear schedule pyvene's tutorials anneal it with.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::{InterventionError, Result};

/// A temperature `T > 0` that can be changed through `&self`: interventions are shared
/// (`Arc<dyn Intervention>`) once inside an intervenable model, and annealing changes it
/// between training steps. Reads and writes are atomic; a clone is an independent copy.
///
/// ```
/// use vene_interventions::Temperature;
/// let t = Temperature::new(50.0)?;
/// t.set(1.0)?;
/// assert_eq!(t.get(), 1.0);
/// assert!(t.set(0.0).is_err() && t.set(f64::NAN).is_err());
/// # Ok::<(), vene_interventions::InterventionError>(())
/// ```
pub struct Temperature(AtomicU64);

impl Temperature {
    /// A temperature of `t` (finite and > 0).
    pub fn new(t: f64) -> Result<Self> {
        check(t)?;
        Ok(Self(AtomicU64::new(t.to_bits())))
    }

    /// The current value.
    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }

    /// Sets it to `t` (finite and > 0; anything else is refused and the value kept).
    pub fn set(&self, t: f64) -> Result<()> {
        check(t)?;
        self.0.store(t.to_bits(), Ordering::Relaxed);
        Ok(())
    }
}

fn check(t: f64) -> Result<()> {
    if t.is_finite() && t > 0.0 {
        Ok(())
    } else {
        Err(InterventionError::Unsupported(format!(
            "temperature {t}: a temperature must be finite and greater than 0"
        )))
    }
}

impl Clone for Temperature {
    fn clone(&self) -> Self {
        Self(AtomicU64::new(self.0.load(Ordering::Relaxed)))
    }
}

impl std::fmt::Debug for Temperature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Temperature({})", self.get())
    }
}

/// A temperature annealed linearly from `start` to `end` over `steps` training steps, as
/// pyvene's tutorials do with `torch.linspace(start, end, steps)`: step `i` gets
/// `start + (end - start) * i / (steps - 1)`; steps past the last keep `end`.
///
/// ```
/// use vene_interventions::TemperatureSchedule;
/// let s = TemperatureSchedule::linear(50.0, 0.1, 5)?;
/// assert_eq!(s.at(0), 50.0);
/// assert!((s.at(2) - 25.05).abs() < 1e-12);
/// assert_eq!(s.at(4), 0.1);
/// assert_eq!(s.at(100), 0.1);
/// # Ok::<(), vene_interventions::InterventionError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TemperatureSchedule {
    start: f64,
    end: f64,
    steps: usize,
}

impl TemperatureSchedule {
    /// From `start` to `end` (both finite and > 0) over `steps` (at least 1) steps.
    pub fn linear(start: f64, end: f64, steps: usize) -> Result<Self> {
        check(start)?;
        check(end)?;
        if steps == 0 {
            return Err(InterventionError::Unsupported(
                "a temperature schedule needs at least 1 step".into(),
            ));
        }
        Ok(Self { start, end, steps })
    }

    /// The temperature at step `step` (0-based).
    pub fn at(&self, step: usize) -> f64 {
        if self.steps == 1 || step + 1 >= self.steps {
            return if step == 0 && self.steps == 1 {
                self.start
            } else {
                self.end
            };
        }
        self.start + (self.end - self.start) * step as f64 / (self.steps - 1) as f64
    }
}
