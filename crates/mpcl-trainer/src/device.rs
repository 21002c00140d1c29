//! Where a run computes: `train.device = "cpu" | "cuda" | "cuda:N"`. A CUDA request that the
//! linked libtorch cannot serve is an error, never a silent fall-back to the CPU.
//!
//! One device per run: multi-GPU data parallelism is out of scope for now. The CUDA path is
//! untested here (the development machines have no GPU); only its error paths are.
//!
//! `train.precision = "bf16"` runs the forward pass under libtorch's autocast through
//! mpcl-autocast (tch's own `autocast` can choose neither the dtype nor the CPU).

use mpcl_autocast::Autocast;
use tch::{Cuda, Device, Kind, Tensor};

use crate::TrainError;
use crate::config::Precision;

/// Runs `forward` under autocast with bf16 on `device` when `precision` asks for it, then
/// brings every tensor it returns back to f32, so losses, aggregators and the online
/// classifier see f32 whatever the precision.
///
/// # Errors
/// [`TrainError::Invalid`] naming `train.precision` when libtorch refuses autocast on the
/// device.
pub fn forward<const N: usize>(
    precision: Precision,
    device: Device,
    forward: impl FnOnce() -> [Tensor; N],
) -> Result<[Tensor; N], TrainError> {
    let _region = match precision {
        Precision::F32 => None,
        Precision::Bf16 => Some(Autocast::enter(device, Kind::BFloat16).map_err(|e| {
            TrainError::Invalid(format!("train.precision = \"bf16\" on {device:?}: {e}"))
        })?),
    };
    Ok(forward().map(|t| t.to_kind(Kind::Float)))
}

/// Parses a device name; the message names `train.device` and the value.
///
/// # Errors
/// A message for anything but `cpu`, `cuda` and `cuda:N`.
pub fn parse(spec: &str) -> Result<Device, String> {
    let bad = || format!("train.device = {spec:?}: expected \"cpu\", \"cuda\" or \"cuda:N\"");
    match spec {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::Cuda(0)),
        _ => {
            let index = spec.strip_prefix("cuda:").ok_or_else(bad)?;
            index.parse::<usize>().map(Device::Cuda).map_err(|_| bad())
        }
    }
}

/// The device `spec` names, checked against what the linked libtorch offers.
///
/// # Errors
/// [`TrainError::Invalid`] when the name does not parse, when a CUDA device is requested and
/// libtorch has no usable CUDA (a CPU-only build, or no driver or GPU), or when the index is
/// out of range; the message says what is missing.
pub fn resolve(spec: &str) -> Result<Device, TrainError> {
    let device = parse(spec).map_err(TrainError::Invalid)?;
    check(spec, device, Cuda::is_available(), Cuda::device_count())?;
    Ok(device)
}

/// The availability check, apart so the error paths can be tested on any machine.
fn check(spec: &str, device: Device, cuda: bool, count: i64) -> Result<(), TrainError> {
    let Device::Cuda(index) = device else {
        return Ok(());
    };
    if !cuda {
        return Err(TrainError::Invalid(format!(
            "train.device = {spec:?}, but the libtorch {} this binary is linked against has \
             no usable CUDA (a CPU-only build, or no NVIDIA driver or GPU): install the CUDA \
             libraries with `cargo xtask setup --cuda` on a GPU machine, or set \
             train.device = \"cpu\"",
            env!("MPCL_LIBTORCH_VERSION")
        )));
    }
    if index as i64 >= count {
        return Err(TrainError::Invalid(format!(
            "train.device = {spec:?}, but libtorch sees {count} CUDA device(s)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse() {
        assert_eq!(parse("cpu"), Ok(Device::Cpu));
        assert_eq!(parse("cuda"), Ok(Device::Cuda(0)));
        assert_eq!(parse("cuda:3"), Ok(Device::Cuda(3)));
        for bad in ["gpu", "cuda:", "cuda:-1", "cuda:x", "CPU", "mps"] {
            let err = parse(bad).unwrap_err();
            assert!(err.starts_with(&format!("train.device = {bad:?}")), "{err}");
        }
    }

    #[test]
    fn cuda_without_cuda_is_an_error_not_a_fallback() {
        let err = check("cuda", Device::Cuda(0), false, 0)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("has no usable CUDA") && err.contains("xtask setup --cuda"),
            "{err}"
        );
        let err = check("cuda:2", Device::Cuda(2), true, 2)
            .unwrap_err()
            .to_string();
        assert!(err.contains("libtorch sees 2 CUDA device(s)"), "{err}");
        assert!(check("cuda:1", Device::Cuda(1), true, 2).is_ok());
        assert!(check("cpu", Device::Cpu, false, 0).is_ok());
    }

    #[test]
    fn this_machine_answers_honestly() {
        // Whatever this machine has, resolve agrees with libtorch: CUDA is granted exactly
        // when libtorch reports it usable.
        let got = resolve("cuda");
        assert_eq!(
            got.is_ok(),
            Cuda::is_available() && Cuda::device_count() > 0
        );
        assert_eq!(resolve("cpu").unwrap(), Device::Cpu);
    }
}
