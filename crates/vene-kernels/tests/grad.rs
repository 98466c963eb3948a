//! Gradients flow through the fused op like through the composition.

use candle_core::{DType, Device, Tensor, Var};
use vene_kernels::{masked_combine, masked_combine_reference, masked_combine_rows, Combine};

fn grads(op: Combine, broadcast: bool, fused: bool) -> (Vec<f32>, Vec<f32>) {
    let dev = Device::Cpu;
    let base = Var::from_tensor(
        &Tensor::arange(0f32, 8., &dev)
            .unwrap()
            .reshape((2, 4))
            .unwrap(),
    )
    .unwrap();
    let src_shape: &[usize] = if broadcast { &[4] } else { &[2, 4] };
    let source = Var::from_tensor(&Tensor::ones(src_shape, DType::F32, &dev).unwrap()).unwrap();
    // Weights make every output element's gradient distinct: w = 1..=8.
    let w = Tensor::arange(1f32, 9., &dev)
        .unwrap()
        .reshape((2, 4))
        .unwrap();
    let out = if fused {
        masked_combine(base.as_tensor(), source.as_tensor(), &[3, 1], op).unwrap()
    } else {
        masked_combine_reference(base.as_tensor(), source.as_tensor(), &[3, 1], op).unwrap()
    };
    let g = (out * w).unwrap().sum_all().unwrap().backward().unwrap();
    let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    (
        flat(g.get(base.as_tensor()).unwrap()),
        flat(g.get(source.as_tensor()).unwrap()),
    )
}

#[test]
fn replace_gradients_by_hand() {
    let (gb, gs) = grads(Combine::Replace, false, true);
    assert_eq!(gb, [1., 0., 3., 0., 5., 0., 7., 0.]);
    assert_eq!(gs, [0., 2., 0., 4., 0., 6., 0., 8.]);
}

#[test]
fn add_subtract_and_broadcast_gradients_by_hand() {
    let (gb, gs) = grads(Combine::Add, false, true);
    assert_eq!(gb, [1., 2., 3., 4., 5., 6., 7., 8.]);
    assert_eq!(gs, [0., 2., 0., 4., 0., 6., 0., 8.]);
    let (gb, gs) = grads(Combine::Subtract, true, true);
    assert_eq!(gb, [1., 2., 3., 4., 5., 6., 7., 8.]);
    // Broadcast source: rows summed, negated for Subtract.
    assert_eq!(gs, [0., -8., 0., -12.]);
}

#[test]
fn gradients_match_the_composition() {
    for op in [Combine::Replace, Combine::Add, Combine::Subtract] {
        for broadcast in [false, true] {
            assert_eq!(
                grads(op, broadcast, true),
                grads(op, broadcast, false),
                "{op:?} broadcast={broadcast}"
            );
        }
    }
}

#[test]
fn per_row_gradients() {
    let dev = Device::Cpu;
    let base = Var::zeros((2, 3), DType::F32, &dev).unwrap();
    let source = Var::zeros((2, 3), DType::F32, &dev).unwrap();
    let out = masked_combine_rows(
        base.as_tensor(),
        source.as_tensor(),
        &[vec![0], vec![1, 2]],
        Combine::Replace,
    )
    .unwrap();
    let g = out.sum_all().unwrap().backward().unwrap();
    let gs = g.get(source.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
    let gb = g.get(base.as_tensor()).unwrap().to_vec2::<f32>().unwrap();
    assert_eq!(gs, [[1., 0., 0.], [0., 1., 1.]]);
    assert_eq!(gb, [[0., 1., 1.], [1., 0., 0.]]);
}
