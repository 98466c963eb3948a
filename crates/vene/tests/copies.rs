//! Bytes an intervention adds to a forward: an interchange at some positions costs one copy of
//! the intervened activation (the scatter's output) and its units; at every position it costs
//! only the intervention's output (no gather, no scatter). Counted with a counting allocator,
//! so this binary holds a single test.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use candle_core::{DType, Device, Tensor};
use vene::hooks::{Component, NoHooks};
use vene::models::{Gpt2Config, LanguageModel, Model};
use vene::{
    ForwardRequest, IntervenableConfig, IntervenableModel, RepresentationConfig, UnitLocations,
};

struct Counting;

static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is passed to the system allocator unchanged; the counter only adds.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATED.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: the caller's layout, as given.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: ptr was allocated by System with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATED.fetch_add(new_size, Ordering::Relaxed);
        // SAFETY: as for dealloc and alloc.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Bytes allocated by `f` (the smallest of three runs, after a warm-up run).
fn bytes_of(mut f: impl FnMut()) -> usize {
    f();
    (0..3)
        .map(|_| {
            let before = ALLOCATED.load(Ordering::Relaxed);
            f();
            ALLOCATED.load(Ordering::Relaxed) - before
        })
        .min()
        .unwrap_or(0)
}

#[test]
fn an_interchange_adds_one_copy_of_the_activation_at_most() {
    let device = Device::Cpu;
    let (b, t, d) = (4usize, 64usize, 256usize);
    let cfg = Gpt2Config {
        n_positions: t,
        ..Gpt2Config::tiny(512, d, 2, 4)
    };
    let model = Model::random_gpt2(&cfg, DType::F32, &device)
        .and_then(|(m, _vars)| m.detached())
        .unwrap();
    let ids: Vec<u32> = (0..b * t).map(|i| (i * 37 % 512) as u32).collect();
    let ids = Tensor::from_vec(ids, (b, t), &device).unwrap();
    let activation_bytes = b * t * d * 4;

    let plain = bytes_of(|| {
        model.forward(&ids, None, &mut NoHooks).unwrap();
    });
    let repr = RepresentationConfig::new(0, Component::BlockOutput);
    let im = IntervenableModel::new(IntervenableConfig::new(vec![repr]), model.clone()).unwrap();
    let constant = Tensor::ones(d, DType::F32, &device).unwrap();
    let run = |locations: UnitLocations| {
        let req = ForwardRequest::new(ids.clone())
            .locations(locations)
            .source_representation(constant.clone());
        bytes_of(|| {
            im.forward(&req).unwrap();
        })
    };
    let one_position = run(UnitLocations::position(5)) as f64 - plain as f64;
    let every: Vec<usize> = (0..t).collect();
    let all_positions = run(UnitLocations::sources_to_base(
        vec![vec![every.clone(); b]],
        vec![vec![every; b]],
    )) as f64
        - plain as f64;
    let a = activation_bytes as f64;
    println!("plain {plain} B; extra: one position {one_position} B, all {all_positions} B; activation {a} B");
    // the scatter's output, the units and their index; bookkeeping is small next to them
    assert!(
        one_position <= 1.15 * a,
        "one position adds {one_position} B"
    );
    // the intervention's output replaces the activation
    assert!(
        all_positions <= 1.15 * a,
        "every position adds {all_positions} B"
    );
    // and the intervention is real: it changes the logits
    let out = im
        .forward(
            &ForwardRequest::new(ids.clone())
                .locations(UnitLocations::position(5))
                .source_representation(constant)
                .output_original(true),
        )
        .unwrap();
    let diff = (out.intervened - out.original.unwrap())
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(diff > 1e-3);
}
