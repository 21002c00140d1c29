//! The float types of graph weights and features: f32 and f64, behind one sealed trait so
//! that every graph and update is written once for both.

use ndarray::NdFloat;
use num_traits::FromPrimitive;

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// f32 or f64: the element type of [`CsrGraph`](crate::CsrGraph), dense graphs and features.
///
/// Sealed: the updates and their tolerances are stated for IEEE single and double precision
/// only.
pub trait Real: NdFloat + FromPrimitive + std::iter::Sum + sealed::Sealed {
    /// `x` rounded to this type.
    fn of(x: f64) -> Self;
    /// The value as an f64 (exact).
    fn widen(self) -> f64;
}

impl Real for f32 {
    fn of(x: f64) -> Self {
        x as f32
    }
    fn widen(self) -> f64 {
        f64::from(self)
    }
}

impl Real for f64 {
    fn of(x: f64) -> Self {
        x
    }
    fn widen(self) -> f64 {
        self
    }
}
