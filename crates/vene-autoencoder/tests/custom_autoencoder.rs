//! A user-defined autoencoder, outside the crate, used through `Box<dyn Autoencoder>`.

use candle_core::{DType, Device, Tensor};
use vene_autoencoder::{Autoencoder, AutoencoderError, Result};

/// Splits x into its positive and negative parts: latent `[relu(x), relu(-x)]`, decode
/// `z[..d] - z[d..]`: a lossless autoencoder with latent width 2d.
#[derive(Debug)]
struct SignSplit {
    d: usize,
}

impl Autoencoder for SignSplit {
    fn input_dim(&self) -> usize {
        self.d
    }
    fn latent_dim(&self) -> usize {
        2 * self.d
    }
    fn encode(&self, x: &Tensor) -> Result<Tensor> {
        if x.dims().last() != Some(&self.d) {
            return Err(AutoencoderError::WidthMismatch {
                what: "input",
                expected: self.d,
                got: x.dims().to_vec(),
            });
        }
        Ok(Tensor::cat(&[x.relu()?, x.neg()?.relu()?], x.rank() - 1)?)
    }
    fn decode(&self, z: &Tensor) -> Result<Tensor> {
        let last = z.rank() - 1;
        Ok((z.narrow(last, 0, self.d)? - z.narrow(last, self.d, self.d)?)?)
    }
}

#[test]
fn custom_autoencoder_through_the_trait_object() {
    let ae: Box<dyn Autoencoder> = Box::new(SignSplit { d: 3 });
    let x = Tensor::new(&[[1.5f32, -2.0, 0.25], [-0.5, 0.0, 3.0]], &Device::Cpu).unwrap();
    let (recon, latent) = ae.forward(&x, true).unwrap();
    assert_eq!(recon.to_vec2::<f32>().unwrap(), x.to_vec2::<f32>().unwrap());
    assert_eq!(
        latent.unwrap().to_vec2::<f32>().unwrap(),
        vec![
            vec![1.5, 0.0, 0.25, 0.0, 2.0, 0.0],
            vec![0.0, 0.0, 3.0, 0.5, 0.0, 0.0]
        ]
    );
    // The trait's defaults: encode_selected selects, decoder_rows is unknown.
    let sel = ae.encode_selected(&x, &[4, 2]).unwrap();
    assert_eq!(
        sel.to_vec2::<f32>().unwrap(),
        vec![vec![2.0, 0.25], vec![0.0, 3.0]]
    );
    assert!(ae.decoder_rows(&[0]).unwrap().is_none());
    let bad = Tensor::zeros((2, 4), DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(
        ae.encode(&bad),
        Err(AutoencoderError::WidthMismatch { .. })
    ));
}
