//! Where a run computes: `train.device = "cpu" | "cuda" | "cuda:N"`. A CUDA request that the
//! linked libtorch cannot serve is an error, never a silent fall-back to the CPU.
//!
//! One device per run: multi-GPU data parallelism is out of scope for now. Training on a GPU
//! is untested (the development machines have none); the CUDA build's linking and its error
//! paths are tested with the CUDA libtorch on a machine without one.
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

/// What the linked libtorch offers for CUDA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CudaSupport {
    /// Whether libtorch's CUDA library is loaded into this process (build/libtorch_rpath.rs
    /// links it when all the libraries it needs are installed).
    pub loaded: bool,
    /// The CUDA devices libtorch sees.
    pub devices: i64,
    /// Why libtorch with CUDA sees none, in its own words ("Found no NVIDIA driver …", "The
    /// NVIDIA driver on your system is too old …").
    pub why_none: Option<String>,
}

impl CudaSupport {
    /// Asks the linked libtorch. With CUDA but no device, it is made to allocate on one,
    /// which fails with libtorch's reason.
    pub fn probe() -> Self {
        let loaded = tch::utils::has_cudart();
        let devices = if Cuda::is_available() {
            Cuda::device_count()
        } else {
            0
        };
        let why_none = (loaded && devices == 0).then(|| {
            match Tensor::f_zeros([1], (Kind::Float, Device::Cuda(0))) {
                Ok(_) => "libtorch reports no device".to_owned(),
                Err(e) => first_line(&e.to_string()),
            }
        });
        Self {
            loaded,
            devices,
            why_none,
        }
    }
}

impl std::fmt::Display for CudaSupport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.loaded, self.devices) {
            (false, _) => f.write_str("without CUDA"),
            (true, 1) => f.write_str("with CUDA, 1 GPU"),
            (true, n) => write!(f, "with CUDA, {n} GPUs"),
        }
    }
}

/// The first line of a libtorch error, without tch's "Internal torch error: " prefix.
fn first_line(message: &str) -> String {
    let line = message.lines().next().unwrap_or_default();
    line.strip_prefix("Internal torch error: ")
        .unwrap_or(line)
        .to_owned()
}

/// The device `spec` names, checked against what the linked libtorch offers.
///
/// # Errors
/// [`TrainError::Invalid`] when the name does not parse, when a CUDA device is requested and
/// libtorch cannot serve it (linked without CUDA, or with CUDA but without a usable driver
/// or GPU), or when the index is out of range; the message says which and what to do.
pub fn resolve(spec: &str) -> Result<Device, TrainError> {
    let device = parse(spec).map_err(TrainError::Invalid)?;
    if let Device::Cuda(_) = device {
        check(spec, device, &CudaSupport::probe())?;
    }
    Ok(device)
}

/// The availability check, apart so the error paths can be tested on any machine.
fn check(spec: &str, device: Device, cuda: &CudaSupport) -> Result<(), TrainError> {
    let Device::Cuda(index) = device else {
        return Ok(());
    };
    let version = env!("MPCL_LIBTORCH_VERSION");
    if !cuda.loaded {
        return Err(TrainError::Invalid(format!(
            "train.device = {spec:?}, but this binary is linked against libtorch {version} \
             without CUDA (a CPU-only libtorch, the CPU install of `cargo xtask setup`, or a \
             libtorch_cuda.so whose libraries `ldd` could not find when it was built): on a \
             GPU machine run `cargo xtask setup --cuda`, which installs the CUDA libraries \
             and points cargo at them, and rebuild; or set train.device = \"cpu\""
        )));
    }
    if cuda.devices == 0 {
        let why = cuda.why_none.as_deref().unwrap_or_default();
        return Err(TrainError::Invalid(format!(
            "train.device = {spec:?}, but libtorch {version} (linked with CUDA) sees no GPU: \
             {why}; check `nvidia-smi` and CUDA_VISIBLE_DEVICES, or set \
             train.device = \"cpu\""
        )));
    }
    if index as i64 >= cuda.devices {
        return Err(TrainError::Invalid(format!(
            "train.device = {spec:?}, but libtorch sees {} CUDA device(s)",
            cuda.devices
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

    fn support(loaded: bool, devices: i64, why: Option<&str>) -> CudaSupport {
        CudaSupport {
            loaded,
            devices,
            why_none: why.map(str::to_owned),
        }
    }

    #[test]
    fn cuda_without_cuda_is_an_error_not_a_fallback() {
        let message = |spec: &str, device, cuda: &CudaSupport| {
            check(spec, device, cuda).unwrap_err().to_string()
        };
        let err = message("cuda", Device::Cuda(0), &support(false, 0, None));
        assert!(
            err.contains("without CUDA") && err.contains("xtask setup --cuda"),
            "{err}"
        );
        let driver = "Found no NVIDIA driver on your system";
        let err = message("cuda", Device::Cuda(0), &support(true, 0, Some(driver)));
        assert!(
            err.contains("(linked with CUDA) sees no GPU: Found no NVIDIA driver")
                && err.contains("nvidia-smi"),
            "{err}"
        );
        let err = message("cuda:2", Device::Cuda(2), &support(true, 2, None));
        assert!(err.contains("libtorch sees 2 CUDA device(s)"), "{err}");
        assert!(check("cuda:1", Device::Cuda(1), &support(true, 2, None)).is_ok());
        assert!(check("cpu", Device::Cpu, &support(false, 0, None)).is_ok());
    }

    #[test]
    fn libtorch_errors_lose_the_tch_prefix_and_the_backtrace() {
        let raw = "Internal torch error: Found no NVIDIA driver on your system.\nException raised \
                   from …";
        assert_eq!(first_line(raw), "Found no NVIDIA driver on your system.");
        assert_eq!(first_line("plain"), "plain");
    }

    #[test]
    fn the_summary_names_the_build_and_the_gpus() {
        assert_eq!(support(false, 0, None).to_string(), "without CUDA");
        assert_eq!(support(true, 0, Some("x")).to_string(), "with CUDA, 0 GPUs");
        assert_eq!(support(true, 1, None).to_string(), "with CUDA, 1 GPU");
    }

    #[test]
    fn a_cuda_libtorch_is_loaded_when_linked() {
        // build/libtorch_rpath.rs links libtorch_cuda.so past `--as-needed` when all its
        // libraries resolve (MPCL_LIBTORCH_CUDA = 1), and leaves it out otherwise. libtorch's
        // own answer must agree: its CUDA runtime is present exactly in the first case.
        let linked = env!("MPCL_LIBTORCH_CUDA") == "1";
        let lib = env!("MPCL_LIBTORCH_LIB");
        assert_eq!(CudaSupport::probe().loaded, linked, "libtorch in {lib}");
    }

    #[test]
    fn this_machine_answers_honestly() {
        // Whatever this machine has, resolve agrees with libtorch: CUDA is granted exactly
        // when libtorch reports it usable.
        let got = resolve("cuda");
        assert_eq!(got.is_ok(), CudaSupport::probe().devices > 0);
        assert_eq!(resolve("cpu").unwrap(), Device::Cpu);
    }
}
