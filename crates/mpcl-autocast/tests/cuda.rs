//! Autocast on an NVIDIA GPU. Built only with the feature `gpu-tests`, which
//! `cargo xtask test --cuda` turns on; without a GPU the test fails and says why.

use mpcl_autocast::Autocast;
use tch::{Device, Kind, Tensor};

#[test]
fn cuda_products_run_in_bf16_inside_and_f32_outside() {
    // As products_run_in_bf16_inside_and_f32_outside in tests/autocast.rs, on the GPU.
    let cuda = Device::Cuda(0);
    let a = Tensor::f_ones([8, 8], (Kind::Float, cuda)).unwrap_or_else(|e| {
        let reason = e.to_string();
        panic!(
            "this test needs a GPU; none took a tensor: {}",
            reason.lines().next().unwrap_or_default()
        )
    });
    let inside = {
        let _region = Autocast::enter(cuda, Kind::BFloat16).unwrap();
        (a.matmul(&a).kind(), (&a + &a).kind())
    };
    assert_eq!(inside, (Kind::BFloat16, Kind::Float));
    assert_eq!(a.matmul(&a).kind(), Kind::Float);
    // 8 ones summed: exact in bf16.
    assert_eq!(a.matmul(&a).double_value(&[0, 0]), 8.0);
}
