//! [`Adam`]: Adam with decoupled weight decay (AdamW), the same update as candle_nn's
//! `AdamW`, whose state (step count, first and second moments of every parameter, by name)
//! can be read out and restored, so that a training checkpoint can hold it.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use crate::{AutoencoderError, Result};

/// Adam's hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamParams {
    /// Learning rate.
    pub lr: f64,
    /// Decay of the first moment.
    pub beta1: f64,
    /// Decay of the second moment.
    pub beta2: f64,
    /// Added to the root of the second moment.
    pub eps: f64,
    /// Decoupled weight decay (0: plain Adam).
    pub weight_decay: f64,
}

impl Default for AdamParams {
    /// `lr` 1e-3, betas 0.9 / 0.999, `eps` 1e-8, no weight decay.
    fn default() -> Self {
        Self {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

#[derive(Debug)]
struct Slot {
    name: String,
    var: Var,
    m: Tensor,
    v: Tensor,
}

/// Adam(W) over named [`Var`]s, with a state that can be saved and restored.
///
/// Each step, for a parameter `p` with gradient `g` at step `t` (1-based):
/// `m = beta1 m + (1 - beta1) g`, `v = beta2 v + (1 - beta2) g^2`,
/// `p = p (1 - lr wd) - lr (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)`.
///
/// ```
/// use candle_core::{Device, Tensor, Var};
/// use vene_autoencoder::training::{Adam, AdamParams};
///
/// let w = Var::new(&[1f32, -2.], &Device::Cpu)?;
/// let mut opt = Adam::new(vec![("w".into(), w.clone())], AdamParams { lr: 0.1, ..Default::default() })?;
/// opt.backward_step(&w.as_tensor().sqr()?.sum_all()?)?;
/// // the first Adam step moves every coordinate by about lr against its gradient's sign
/// let after = w.as_tensor().to_vec1::<f32>()?;
/// assert!((after[0] - 0.9).abs() < 1e-5 && (after[1] + 1.9).abs() < 1e-5);
/// assert_eq!(opt.step_count(), 1);
/// let state = opt.state();
/// assert!(state.contains_key("adam.m.w") && state.contains_key("adam.v.w"));
/// # Ok::<(), vene_autoencoder::AutoencoderError>(())
/// ```
#[derive(Debug)]
pub struct Adam {
    params: AdamParams,
    step: u64,
    slots: Vec<Slot>,
}

impl Adam {
    /// An optimizer of the named parameters `vars` (names must be distinct), moments zero.
    pub fn new(vars: Vec<(String, Var)>, params: AdamParams) -> Result<Self> {
        let mut slots: Vec<Slot> = Vec::with_capacity(vars.len());
        for (name, var) in vars {
            if slots.iter().any(|s| s.name == name) {
                return Err(AutoencoderError::InvalidArgument(format!(
                    "Adam: two parameters named `{name}`"
                )));
            }
            if !var.dtype().is_float() {
                return Err(AutoencoderError::DTypeMismatch(format!(
                    "Adam: parameter `{name}` is {:?}, not a float",
                    var.dtype()
                )));
            }
            let m = var.as_tensor().zeros_like()?;
            let v = m.clone();
            slots.push(Slot { name, var, m, v });
        }
        Ok(Self {
            params,
            step: 0,
            slots,
        })
    }

    /// The hyperparameters.
    pub fn params(&self) -> AdamParams {
        self.params
    }

    /// Sets the learning rate of the next steps.
    pub fn set_learning_rate(&mut self, lr: f64) {
        self.params.lr = lr;
    }

    /// Steps taken.
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// One step from the gradients in `grads` (parameters without a gradient are left alone,
    /// their moments too).
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.step += 1;
        let AdamParams {
            lr,
            beta1,
            beta2,
            eps,
            weight_decay,
        } = self.params;
        let t = self.step as i32;
        let bias1 = 1.0 / (1.0 - beta1.powi(t));
        let bias2 = 1.0 / (1.0 - beta2.powi(t));
        let keep = 1.0 - lr * weight_decay;
        for slot in &mut self.slots {
            let Some(g) = grads.get(slot.var.as_tensor()) else {
                continue;
            };
            // Detached: a gradient summed over several uses of its parameter carries the
            // graph of that sum, and moments computed from it would then hold every earlier
            // step's moments and gradients alive (memory growing by step).
            let g = g.detach();
            let m = ((&slot.m * beta1)? + (&g * (1.0 - beta1))?)?.detach();
            let v = ((&slot.v * beta2)? + (g.sqr()? * (1.0 - beta2))?)?.detach();
            let denom = ((&v * bias2)?.sqrt()? + eps)?;
            let update = ((&m * bias1)? / denom)?;
            let p = ((slot.var.as_tensor().detach() * keep)? - (update * lr)?)?;
            slot.var.set(&p)?;
            slot.m = m;
            slot.v = v;
        }
        Ok(())
    }

    /// Back-propagates `loss` and takes one step.
    pub fn backward_step(&mut self, loss: &Tensor) -> Result<()> {
        let grads = loss.backward()?;
        self.step(&grads)
    }

    /// The moments by name: `adam.m.{name}` and `adam.v.{name}` for each parameter.
    pub fn state(&self) -> HashMap<String, Tensor> {
        let mut out = HashMap::with_capacity(self.slots.len() * 2);
        for s in &self.slots {
            out.insert(format!("adam.m.{}", s.name), s.m.clone());
            out.insert(format!("adam.v.{}", s.name), s.v.clone());
        }
        out
    }

    /// Restores the step count and the moments saved by [`Adam::state`]; every moment must be
    /// present with its parameter's shape and dtype (`source` names where they came from in
    /// the errors). On error nothing changes.
    pub fn load_state(
        &mut self,
        step: u64,
        state: &HashMap<String, Tensor>,
        source: &str,
    ) -> Result<()> {
        let mut loaded = Vec::with_capacity(self.slots.len());
        for s in &self.slots {
            let mut pair = Vec::with_capacity(2);
            for kind in ["m", "v"] {
                let key = format!("adam.{kind}.{}", s.name);
                let t = state
                    .get(&key)
                    .ok_or_else(|| AutoencoderError::MissingTensor {
                        file: source.into(),
                        tensor: key.clone(),
                    })?;
                if t.dims() != s.var.dims() {
                    return Err(AutoencoderError::ShapeMismatch {
                        file: source.into(),
                        tensor: key,
                        expected: format!("{:?}", s.var.dims()),
                        got: t.dims().to_vec(),
                    });
                }
                if t.dtype() != s.var.dtype() {
                    return Err(AutoencoderError::DTypeMismatch(format!(
                        "{source}: `{key}` is {:?}, its parameter {:?}",
                        t.dtype(),
                        s.var.dtype()
                    )));
                }
                pair.push(t.to_device(s.var.device())?);
            }
            loaded.push(pair);
        }
        for (s, mut pair) in self.slots.iter_mut().zip(loaded) {
            s.v = pair.pop().expect("two moments");
            s.m = pair.pop().expect("two moments");
        }
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};

    fn loss(w: &Var, b: &Var, x: &Tensor) -> Tensor {
        x.matmul(w.as_tensor())
            .unwrap()
            .broadcast_add(b.as_tensor())
            .unwrap()
            .tanh()
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
    }

    /// A parameter used twice in the loss gets a gradient that is a sum (with a graph of its
    /// own); the moments must not keep that graph, or each step's moments would hold every
    /// earlier step's alive (a training run's memory then grew by step).
    #[test]
    fn moments_hold_no_graph_of_earlier_steps() {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[0.5f32, -1.0], [2.0, 0.25]], &dev).unwrap();
        let w = Var::new(&[[0.3f32, -0.2], [0.1, 0.4]], &dev).unwrap();
        let mut opt = Adam::new(vec![("w".into(), w.clone())], AdamParams::default()).unwrap();
        for _ in 0..3 {
            // w twice: a product and a penalty
            let y = x.matmul(w.as_tensor()).unwrap();
            let loss = (y.sqr().unwrap().sum_all().unwrap()
                + w.as_tensor().abs().unwrap().sum_all().unwrap())
            .unwrap();
            let grads = loss.backward().unwrap();
            assert!(
                grads.get(w.as_tensor()).unwrap().track_op(),
                "the sum has a graph"
            );
            opt.step(&grads).unwrap();
        }
        for (name, t) in opt.state() {
            assert!(!t.track_op(), "{name} keeps a graph");
        }
    }

    /// Three steps of ours and of candle_nn's AdamW from the same values give bit-identical
    /// parameters, with and without weight decay.
    #[test]
    fn matches_candle_nn_adamw_bit_for_bit() {
        let dev = Device::Cpu;
        let x = Tensor::arange(0f32, 12., &dev)
            .unwrap()
            .reshape((4, 3))
            .unwrap()
            .affine(0.1, -0.5)
            .unwrap();
        let w0 = Tensor::new(&[[0.3f32, -0.2], [0.1, 0.4], [-0.5, 0.25]], &dev).unwrap();
        let b0 = Tensor::new(&[0.05f32, -0.1], &dev).unwrap();
        for wd in [0.0, 0.01] {
            let (w1, b1) = (
                Var::from_tensor(&w0).unwrap(),
                Var::from_tensor(&b0).unwrap(),
            );
            let (w2, b2) = (
                Var::from_tensor(&w0).unwrap(),
                Var::from_tensor(&b0).unwrap(),
            );
            let p = AdamParams {
                lr: 0.05,
                beta1: 0.9,
                beta2: 0.99,
                eps: 1e-8,
                weight_decay: wd,
            };
            let mut ours =
                Adam::new(vec![("w".into(), w1.clone()), ("b".into(), b1.clone())], p).unwrap();
            let mut theirs = AdamW::new(
                vec![w2.clone(), b2.clone()],
                ParamsAdamW {
                    lr: p.lr,
                    beta1: p.beta1,
                    beta2: p.beta2,
                    eps: p.eps,
                    weight_decay: wd,
                },
            )
            .unwrap();
            for step in 0..3 {
                let lr = 0.05 / (step + 1) as f64;
                ours.set_learning_rate(lr);
                theirs.set_learning_rate(lr);
                ours.backward_step(&loss(&w1, &b1, &x)).unwrap();
                theirs.backward_step(&loss(&w2, &b2, &x)).unwrap();
            }
            for (a, b) in [(&w1, &w2), (&b1, &b2)] {
                let a: Vec<f32> = a.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
                let b: Vec<f32> = b.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
                assert_eq!(a, b, "weight decay {wd}");
            }
            // and the parameters did move
            assert_ne!(
                w1.as_tensor().to_vec2::<f32>().unwrap(),
                w0.to_vec2::<f32>().unwrap()
            );
        }
    }

    /// A restored optimizer continues exactly as the original.
    #[test]
    fn state_round_trip_continues_identically() {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[1f32, -1., 0.5], [0.2, 0.3, -0.7]], &dev).unwrap();
        let w0 = Tensor::new(&[[0.3f32, -0.2], [0.1, 0.4], [-0.5, 0.25]], &dev).unwrap();
        let b0 = Tensor::zeros(2, DType::F32, &dev).unwrap();
        let p = AdamParams {
            lr: 0.01,
            ..Default::default()
        };
        let (w, b) = (
            Var::from_tensor(&w0).unwrap(),
            Var::from_tensor(&b0).unwrap(),
        );
        let mut a = Adam::new(vec![("w".into(), w.clone()), ("b".into(), b.clone())], p).unwrap();
        a.backward_step(&loss(&w, &b, &x)).unwrap();
        let (w2, b2) = (
            Var::from_tensor(&w.as_tensor().copy().unwrap()).unwrap(),
            Var::from_tensor(&b.as_tensor().copy().unwrap()).unwrap(),
        );
        let mut r = Adam::new(vec![("w".into(), w2.clone()), ("b".into(), b2.clone())], p).unwrap();
        r.load_state(a.step_count(), &a.state(), "test").unwrap();
        a.backward_step(&loss(&w, &b, &x)).unwrap();
        r.backward_step(&loss(&w2, &b2, &x)).unwrap();
        assert_eq!(r.step_count(), 2);
        assert_eq!(
            w.as_tensor().to_vec2::<f32>().unwrap(),
            w2.as_tensor().to_vec2::<f32>().unwrap()
        );
        // a missing moment is named
        let mut partial = a.state();
        partial.remove("adam.v.b");
        let err = r.load_state(1, &partial, "ckpt").unwrap_err().to_string();
        assert!(err.contains("adam.v.b"), "{err}");
        assert_eq!(r.step_count(), 2);
    }
}
