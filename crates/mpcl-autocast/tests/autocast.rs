//! Autocast regions on the CPU (bf16): which operations change dtype, that regions nest and
//! restore, that gradients reach f32 parameters, and the errors. The oracle throughout is
//! PyTorch's documented autocast behaviour and the same computation in f32.

use mpcl_autocast::{Autocast, AutocastError};
use tch::{Device, Kind, Tensor, nn, nn::Module};

fn cpu_ones(shape: &[i64]) -> Tensor {
    Tensor::ones(shape, (Kind::Float, Device::Cpu))
}

#[test]
fn products_run_in_bf16_inside_and_f32_outside() {
    let a = cpu_ones(&[8, 8]);
    let inside = {
        let _region = Autocast::enter(Device::Cpu, Kind::BFloat16).unwrap();
        let image = cpu_ones(&[1, 3, 8, 8]);
        let kernel = cpu_ones(&[4, 3, 3, 3]);
        let conv = image.conv2d(&kernel, None::<Tensor>, 1, 1, 1, 1);
        (a.matmul(&a).kind(), conv.kind(), (&a + &a).kind())
    };
    // Products and convolutions are on autocast's lower-precision list; an addition is on
    // no list and keeps its inputs' dtype.
    assert_eq!(inside, (Kind::BFloat16, Kind::BFloat16, Kind::Float));
    assert_eq!(a.matmul(&a).kind(), Kind::Float);
}

#[test]
fn regions_nest_and_restore_what_they_found() {
    assert_eq!(Autocast::current(Device::Cpu).unwrap(), None);
    {
        let _outer = Autocast::enter(Device::Cpu, Kind::BFloat16).unwrap();
        {
            let _inner = Autocast::enter(Device::Cpu, Kind::BFloat16).unwrap();
            assert_eq!(
                Autocast::current(Device::Cpu).unwrap(),
                Some(Kind::BFloat16)
            );
        }
        assert_eq!(
            Autocast::current(Device::Cpu).unwrap(),
            Some(Kind::BFloat16)
        );
    }
    assert_eq!(Autocast::current(Device::Cpu).unwrap(), None);
    let result = std::panic::catch_unwind(|| {
        let _region = Autocast::enter(Device::Cpu, Kind::BFloat16).unwrap();
        panic!("inside the region");
    });
    assert!(result.is_err());
    assert_eq!(Autocast::current(Device::Cpu).unwrap(), None);
}

#[test]
fn gradients_reach_f32_parameters_within_bf16_rounding() {
    // y = Σ tanh(W x) with W [16, 32] and x [64, 32]: the f32 gradient is the oracle; bf16
    // keeps 8 significant bits (relative rounding 2⁻⁸ ≈ 0.004 per input, partly averaging
    // over the 32-term products), so 3 % of the gradient's norm bounds the difference.
    let gradient = |autocast: bool| {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let layer = nn::linear(vs.root(), 32, 16, Default::default());
        let x = Tensor::randn([64, 32], (Kind::Float, Device::Cpu));
        let _region = autocast.then(|| Autocast::enter(Device::Cpu, Kind::BFloat16).unwrap());
        let out = layer.forward(&x);
        assert_eq!(
            out.kind(),
            if autocast {
                Kind::BFloat16
            } else {
                Kind::Float
            }
        );
        out.to_kind(Kind::Float).tanh().sum(Kind::Float).backward();
        layer.ws.grad().copy()
    };
    let (exact, mixed) = (gradient(false), gradient(true));
    assert_eq!(mixed.kind(), Kind::Float);
    let relative = (&mixed - &exact).norm().double_value(&[]) / exact.norm().double_value(&[]);
    assert!(
        relative > 0.0 && relative < 0.03,
        "relative difference {relative}"
    );
}

#[test]
fn refuses_full_precision_dtypes_and_other_devices() {
    let dtype = Autocast::enter(Device::Cpu, Kind::Float).err().unwrap();
    assert!(
        matches!(dtype, AutocastError::Dtype(Kind::Float)),
        "{dtype}"
    );
    assert_eq!(
        dtype.to_string(),
        "autocast dtype Float: expected BFloat16 or Half"
    );
    let device = Autocast::enter(Device::Mps, Kind::BFloat16).err().unwrap();
    assert!(
        matches!(device, AutocastError::Device(Device::Mps)),
        "{device}"
    );
}

#[test]
fn a_cuda_region_sets_cuda_autocast_only() {
    // Autocast state lives in libtorch's CPU library per device type, so this runs without
    // a GPU (and without libtorch's CUDA library). The oracle is PyTorch's rule that each
    // device type has its own flag and dtype: the CPU's stay as they were.
    let cuda = Device::Cuda(0);
    assert_eq!(Autocast::current(cuda).unwrap(), None);
    {
        let _region = Autocast::enter(cuda, Kind::BFloat16).unwrap();
        assert_eq!(Autocast::current(cuda).unwrap(), Some(Kind::BFloat16));
        assert_eq!(Autocast::current(Device::Cpu).unwrap(), None);
    }
    assert_eq!(Autocast::current(cuda).unwrap(), None);
}
