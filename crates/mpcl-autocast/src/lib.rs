//! Automatic mixed precision with a chosen dtype. Inside an [`Autocast`] region, libtorch runs
//! the operations on its autocast lists (convolutions, matrix products, linear layers) in the
//! lower-precision dtype and keeps the precision-sensitive ones (softmax, norms, losses) in
//! f32, as `torch.autocast(device_type, dtype=…)` does in Python; gradients reach the f32
//! parameters through the casts.
//!
//! tch 0.26 has `tch::autocast`, which turns on CUDA autocast with libtorch's default dtype
//! (fp16, which needs loss scaling) and cannot choose another or the CPU. This crate calls
//! `at::autocast` through a small C++ shim (src/shim.cpp), compiled against the headers of
//! the libtorch torch-sys links; that call is this crate's one use of `unsafe`.
//!
//! ```no_run
//! use mpcl_autocast::Autocast;
//! use tch::{Device, Kind, Tensor};
//!
//! let a = Tensor::ones([4, 4], (Kind::Float, Device::Cpu));
//! let product = {
//!     let _region = Autocast::enter(Device::Cpu, Kind::BFloat16).unwrap();
//!     a.matmul(&a)
//! };
//! assert_eq!(product.kind(), Kind::BFloat16);
//! ```

#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int};

use tch::{Device, Kind};

/// Why a region could not be entered.
#[derive(Debug, thiserror::Error)]
pub enum AutocastError {
    /// Only floating-point half types can be autocast to.
    #[error("autocast dtype {0:?}: expected BFloat16 or Half")]
    Dtype(Kind),
    /// Autocast is offered for the CPU and CUDA devices only.
    #[error("autocast on {0:?}: only the CPU and CUDA devices are supported")]
    Device(Device),
    /// libtorch refused; its message.
    #[error("libtorch autocast: {0}")]
    Torch(String),
}

unsafe extern "C" {
    fn mpcl_autocast_state(
        device: c_int,
        enabled: *mut bool,
        dtype: *mut c_int,
        error: *mut c_char,
        size: usize,
    ) -> c_int;
    fn mpcl_autocast_set(
        device: c_int,
        enabled: bool,
        dtype: c_int,
        error: *mut c_char,
        size: usize,
    ) -> c_int;
    fn mpcl_autocast_enter();
    fn mpcl_autocast_leave();
}

/// c10's `DeviceType` number of a device.
fn device_type(device: Device) -> Result<c_int, AutocastError> {
    match device {
        Device::Cpu => Ok(0),
        Device::Cuda(_) => Ok(1),
        other => Err(AutocastError::Device(other)),
    }
}

/// Turns a shim status and its message buffer into a result.
fn status(code: c_int, buffer: &[c_char; 512]) -> Result<(), AutocastError> {
    if code == 0 {
        return Ok(());
    }
    // SAFETY: the shim always NUL-terminates the buffer before returning a non-zero code.
    let message = unsafe { CStr::from_ptr(buffer.as_ptr()) };
    Err(AutocastError::Torch(message.to_string_lossy().into_owned()))
}

/// Whether autocast is on for `device`, and its dtype (a c10 `ScalarType` number).
fn state(device: c_int) -> Result<(bool, c_int), AutocastError> {
    let (mut enabled, mut dtype, mut buffer) = (false, 0, [0 as c_char; 512]);
    // SAFETY: every pointer is to a live local of the declared type; the buffer's size is
    // passed with it.
    let code =
        unsafe { mpcl_autocast_state(device, &mut enabled, &mut dtype, buffer.as_mut_ptr(), 512) };
    status(code, &buffer).map(|()| (enabled, dtype))
}

/// Sets autocast for `device`.
fn set(device: c_int, enabled: bool, dtype: c_int) -> Result<(), AutocastError> {
    let mut buffer = [0 as c_char; 512];
    // SAFETY: the buffer is a live local and its size is passed with it.
    let code = unsafe { mpcl_autocast_set(device, enabled, dtype, buffer.as_mut_ptr(), 512) };
    status(code, &buffer)
}

/// An autocast region on one device and thread (libtorch's autocast state is thread-local).
/// Dropping it restores the state it found, so regions nest and a panic leaves none on.
#[must_use = "autocast ends when the region is dropped"]
pub struct Autocast {
    device: c_int,
    previous: (bool, c_int),
}

impl Autocast {
    /// Turns autocast on for `device` with `dtype` (`Kind::BFloat16` or `Kind::Half`) until
    /// the returned region is dropped.
    ///
    /// # Errors
    /// [`AutocastError`] for another dtype, a device other than CPU or CUDA, or a refusal by
    /// libtorch (its message).
    pub fn enter(device: Device, dtype: Kind) -> Result<Self, AutocastError> {
        let number = match dtype {
            Kind::BFloat16 => BFLOAT16,
            Kind::Half => HALF,
            other => return Err(AutocastError::Dtype(other)),
        };
        let device = device_type(device)?;
        let previous = state(device)?;
        set(device, true, number)?;
        // SAFETY: no arguments; pairs with the call in `drop`.
        unsafe { mpcl_autocast_enter() };
        Ok(Self { device, previous })
    }

    /// Whether autocast is on for `device` in this thread, and with which dtype.
    ///
    /// # Errors
    /// As [`Autocast::enter`] for the device, or libtorch's message.
    pub fn current(device: Device) -> Result<Option<Kind>, AutocastError> {
        let (enabled, dtype) = state(device_type(device)?)?;
        enabled.then(|| kind(dtype)).transpose()
    }
}

/// c10's `ScalarType` numbers of the two dtypes (c10/core/ScalarType.h: Half is the 6th
/// entry, BFloat16 the 16th, counting from 0).
const HALF: c_int = 5;
const BFLOAT16: c_int = 15;

/// The tch kind of a c10 `ScalarType` number autocast reports.
fn kind(dtype: c_int) -> Result<Kind, AutocastError> {
    match dtype {
        HALF => Ok(Kind::Half),
        BFLOAT16 => Ok(Kind::BFloat16),
        other => Err(AutocastError::Torch(format!(
            "unexpected autocast dtype {other}"
        ))),
    }
}

impl Drop for Autocast {
    fn drop(&mut self) {
        // SAFETY: no arguments; pairs with the call in `enter`.
        unsafe { mpcl_autocast_leave() };
        let (enabled, dtype) = self.previous;
        // Restoring what `state` read back cannot be refused.
        set(self.device, enabled, dtype).expect("libtorch restores an autocast state it gave");
    }
}
