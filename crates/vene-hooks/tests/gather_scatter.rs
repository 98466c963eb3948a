use candle_core::{DType, Device, Tensor};
use vene_hooks::{
    gather_head_positions, gather_positions, merge_heads, scatter_head_positions,
    scatter_positions, split_heads, HeadPositions, HookError,
};

/// x[b, t, j] = 100 b + 10 t + j
fn ramp(b: usize, t: usize, d: usize) -> Tensor {
    let mut v = Vec::new();
    for i in 0..b {
        for p in 0..t {
            for j in 0..d {
                v.push((100 * i + 10 * p + j) as f32);
            }
        }
    }
    Tensor::from_vec(v, (b, t, d), &Device::Cpu).unwrap()
}

#[test]
fn gather_positions_picks_rows_per_example() {
    let x = ramp(2, 4, 3);
    let g = gather_positions(&x, &[vec![3, 0], vec![1, 1]]).unwrap();
    assert_eq!(
        g.to_vec3::<f32>().unwrap(),
        vec![
            vec![vec![30., 31., 32.], vec![0., 1., 2.]],
            vec![vec![110., 111., 112.], vec![110., 111., 112.]],
        ]
    );
}

#[test]
fn scatter_positions_writes_only_the_given_rows() {
    let x = ramp(2, 4, 3);
    let v = Tensor::full(-1f32, (2, 1, 3), &Device::Cpu).unwrap();
    let y = scatter_positions(&x, &[vec![2], vec![0]], &v).unwrap();
    let yv = y.to_vec3::<f32>().unwrap();
    let xv = x.to_vec3::<f32>().unwrap();
    for b in 0..2 {
        for t in 0..4 {
            let hit = (b == 0 && t == 2) || (b == 1 && t == 0);
            let expect = if hit { vec![-1.; 3] } else { xv[b][t].clone() };
            assert_eq!(yv[b][t], expect, "b={b} t={t}");
        }
    }
    // the input is left as it was
    assert_eq!(x.to_vec3::<f32>().unwrap(), xv);
}

#[test]
fn scatter_of_a_gather_is_the_identity() {
    let x = ramp(3, 5, 2);
    let locs = vec![vec![4, 1], vec![0, 3], vec![2, 2]];
    let g = gather_positions(&x, &locs).unwrap();
    let y = scatter_positions(&x, &locs, &g).unwrap();
    assert_eq!(y.to_vec3::<f32>().unwrap(), x.to_vec3::<f32>().unwrap());
}

#[test]
fn position_out_of_range_names_example_and_position() {
    let x = ramp(2, 4, 3);
    let err = gather_positions(&x, &[vec![1], vec![4]]).unwrap_err();
    match err {
        HookError::PositionOutOfRange {
            example,
            position,
            len,
        } => assert_eq!((example, position, len), (1, 4, 4)),
        other => panic!("unexpected {other}"),
    }
    let v = Tensor::zeros((2, 1, 3), DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(
        scatter_positions(&x, &[vec![9], vec![0]], &v),
        Err(HookError::PositionOutOfRange { example: 0, .. })
    ));
}

#[test]
fn ragged_or_missing_locations_are_rejected() {
    let x = ramp(2, 4, 3);
    assert!(matches!(
        gather_positions(&x, &[vec![1]]),
        Err(HookError::BadLocations(_))
    ));
    assert!(matches!(
        gather_positions(&x, &[vec![1], vec![1, 2]]),
        Err(HookError::BadLocations(_))
    ));
    let wrong = Tensor::zeros((2, 2, 3), DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(
        scatter_positions(&x, &[vec![1], vec![2]], &wrong),
        Err(HookError::Shape { .. })
    ));
}

#[test]
fn heads_split_merge_and_gather() {
    // batch 1, seq 3, 2 heads of dim 2
    let x = ramp(1, 3, 4);
    let s = split_heads(&x, 2).unwrap();
    assert_eq!(s.dims(), &[1, 2, 3, 2]);
    // head 1, position 2 = columns 2..4 of row 2
    assert_eq!(
        s.get(0)
            .unwrap()
            .get(1)
            .unwrap()
            .get(2)
            .unwrap()
            .to_vec1::<f32>()
            .unwrap(),
        vec![22., 23.]
    );
    assert_eq!(
        merge_heads(&s).unwrap().to_vec3::<f32>().unwrap(),
        x.to_vec3::<f32>().unwrap()
    );
    let loc = HeadPositions {
        heads: vec![vec![1, 0]],
        positions: vec![vec![2]],
    };
    let g = gather_head_positions(&x, 2, &loc).unwrap();
    assert_eq!(
        g.to_vec3::<f32>().unwrap(),
        vec![vec![vec![22., 23.], vec![20., 21.]]]
    );
    let v = Tensor::full(7f32, (1, 2, 2), &Device::Cpu).unwrap();
    let y = scatter_head_positions(&x, 2, &loc, &v).unwrap();
    let mut expect = x.to_vec3::<f32>().unwrap();
    expect[0][2] = vec![7.; 4];
    assert_eq!(y.to_vec3::<f32>().unwrap(), expect);
}

#[test]
fn head_out_of_range_and_bad_split() {
    let x = ramp(2, 3, 4);
    let loc = HeadPositions {
        heads: vec![vec![0], vec![2]],
        positions: vec![vec![0], vec![0]],
    };
    assert!(matches!(
        gather_head_positions(&x, 2, &loc),
        Err(HookError::HeadOutOfRange {
            example: 1,
            head: 2,
            n_heads: 2
        })
    ));
    assert!(matches!(split_heads(&x, 3), Err(HookError::Shape { .. })));
}
