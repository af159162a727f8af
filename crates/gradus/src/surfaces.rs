//! Test surfaces: objectives with analytic gradients and known minima, for tests, examples and
//! contour plots.
//!
//! Each surface implements [`Surface`] (in the style of argmin's cost/gradient traits). Surfaces
//! work in `f64`; the first-order optimizers of [`crate::optim`] step over `f32` buffers, so
//! [`Surface::value_f32`] and [`Surface::gradient_f32`] bridge the two by evaluating in `f64`
//! and rounding the result.
//!
//! | name                        | dim | f(x)                                                        | minimum          |
//! |-----------------------------|-----|-------------------------------------------------------------|------------------|
//! | `sphere`                    | n   | Σ xᵢ²                                                       | 0 at 0           |
//! | `ill_conditioned_quadratic` | n   | ½ Σ dᵢ xᵢ², dᵢ = 10^(4 i/(n−1))                             | 0 at 0           |
//! | `rosenbrock`                | n≥2 | Σ (1−xᵢ)² + 100 (xᵢ₊₁−xᵢ²)²                                 | 0 at (1, …, 1)   |
//! | `beale`                     | 2   | (1.5−x+xy)² + (2.25−x+xy²)² + (2.625−x+xy³)²                | 0 at (3, 0.5)    |
//! | `booth`                     | 2   | (x+2y−7)² + (2x+y−5)²                                       | 0 at (1, 3)      |
//! | `himmelblau`                | 2   | (x²+y−11)² + (x+y²−7)²                                      | 0 at four points |
//! | `rastrigin`                 | n   | 10 n + Σ (xᵢ² − 10 cos 2πxᵢ)                                | 0 at 0           |
//! | `ackley`                    | n   | −20 exp(−0.2 √(Σxᵢ²/n)) − exp(Σ cos(2πxᵢ)/n) + 20 + e       | 0 at 0           |
//! | `saddle`                    | 2   | x² − y²                                                     | none (unbounded) |
//! | `styblinski_tang`           | n   | ½ Σ (xᵢ⁴ − 16 xᵢ² + 5 xᵢ)                                   | −39.166… n at (−2.9035…, …) |

use std::f64::consts::{E, PI};

use thiserror::Error;

/// A point or gradient buffer whose length is not the surface's dimension.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("`{surface}` takes {expected} coordinates, found {what} of {found}")]
pub struct DimensionError {
    /// The surface's name.
    pub surface: String,
    /// Its dimension.
    pub expected: usize,
    /// What had the wrong length (`a point`, `a gradient buffer`).
    pub what: &'static str,
    /// The length found.
    pub found: usize,
}

/// An objective with an analytic gradient and known minima.
///
/// The evaluating methods ([`Surface::value`], [`Surface::gradient`], ...) take buffers of
/// [`Surface::dim`] coordinates and do not check them, as they run in optimization loops: given
/// another length they may panic (the 2-D surfaces index their coordinates) or compute over the
/// shorter of the buffers. Points that come from users go through the checked `try_` methods
/// ([`Surface::try_value`], [`Surface::try_gradient`], [`Surface::try_value_and_gradient`]), which
/// return a [`DimensionError`] instead.
pub trait Surface: Send + Sync {
    /// The surface's name, as [`by_name`] spells it.
    fn name(&self) -> &str;

    /// The number of coordinates the surface takes.
    fn dim(&self) -> usize;

    /// The objective at `x` (`x.len() == dim()`).
    ///
    /// # Panics
    /// May panic when `x` is not `dim()` long (unchecked; see [`Surface::try_value`]).
    fn value(&self, x: &[f64]) -> f64;

    /// Writes the gradient at `x` into `grad` (both `dim()` long).
    ///
    /// # Panics
    /// May panic when `x` or `grad` is not `dim()` long (unchecked; see
    /// [`Surface::try_gradient`]).
    fn gradient(&self, x: &[f64], grad: &mut [f64]);

    /// The objective at `x`, writing its gradient into `grad`.
    ///
    /// # Panics
    /// As [`Surface::gradient`].
    fn value_and_gradient(&self, x: &[f64], grad: &mut [f64]) -> f64 {
        self.gradient(x, grad);
        self.value(x)
    }

    /// Checks that a buffer of `len` values (`what`: `a point`, `a gradient buffer`) has the
    /// surface's dimension.
    fn check_dim(&self, what: &'static str, len: usize) -> Result<(), DimensionError> {
        if len == self.dim() {
            Ok(())
        } else {
            Err(DimensionError { surface: self.name().to_string(), expected: self.dim(), what, found: len })
        }
    }

    /// [`Surface::value`], or an error when `x` is not `dim()` long.
    fn try_value(&self, x: &[f64]) -> Result<f64, DimensionError> {
        self.check_dim("a point", x.len())?;
        Ok(self.value(x))
    }

    /// [`Surface::gradient`], or an error when `x` or `grad` is not `dim()` long.
    fn try_gradient(&self, x: &[f64], grad: &mut [f64]) -> Result<(), DimensionError> {
        self.check_dim("a point", x.len())?;
        self.check_dim("a gradient buffer", grad.len())?;
        self.gradient(x, grad);
        Ok(())
    }

    /// [`Surface::value_and_gradient`], or an error when `x` or `grad` is not `dim()` long.
    fn try_value_and_gradient(&self, x: &[f64], grad: &mut [f64]) -> Result<f64, DimensionError> {
        self.check_dim("a point", x.len())?;
        self.check_dim("a gradient buffer", grad.len())?;
        Ok(self.value_and_gradient(x, grad))
    }

    /// Every global minimizer (empty when the surface is unbounded below).
    fn minima(&self) -> Vec<Vec<f64>>;

    /// The global minimum value (`-∞` when the surface is unbounded below).
    fn min_value(&self) -> f64;

    /// A conventional starting point, away from the minima.
    fn default_start(&self) -> Vec<f64>;

    /// The ranges of the first two coordinates that show the surface's features in a 2-D view.
    fn plot_bounds(&self) -> [(f64, f64); 2];

    /// The objective at an `f32` point, evaluated in `f64` and rounded.
    ///
    /// # Panics
    /// As [`Surface::value`].
    fn value_f32(&self, x: &[f32]) -> f32 {
        let x: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        self.value(&x) as f32
    }

    /// The gradient at an `f32` point, evaluated in `f64` and rounded, for the `f32` optimizers.
    ///
    /// # Panics
    /// As [`Surface::gradient`].
    fn gradient_f32(&self, x: &[f32], grad: &mut [f32]) {
        let x: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
        let mut g = vec![0.0; x.len()];
        self.gradient(&x, &mut g);
        for (out, g) in grad.iter_mut().zip(g) {
            *out = g as f32;
        }
    }
}

/// The names [`by_name`] knows.
pub const NAMES: [&str; 10] = [
    "sphere",
    "ill_conditioned_quadratic",
    "rosenbrock",
    "beale",
    "booth",
    "himmelblau",
    "rastrigin",
    "ackley",
    "saddle",
    "styblinski_tang",
];

/// Builds the surface called `name` in `dim` dimensions.
///
/// Returns `None` for an unknown name or a dimension the surface does not have: the fixed 2-D
/// surfaces (`beale`, `booth`, `himmelblau`, `saddle`) need `dim == 2`, `rosenbrock` needs
/// `dim >= 2` and the others `dim >= 1`.
pub fn by_name(name: &str, dim: usize) -> Option<Box<dyn Surface>> {
    let two_d = dim == 2;
    Some(match name {
        "sphere" if dim >= 1 => Box::new(Sphere(dim)),
        "ill_conditioned_quadratic" if dim >= 1 => Box::new(IllConditionedQuadratic(dim)),
        "rosenbrock" if dim >= 2 => Box::new(Rosenbrock(dim)),
        "beale" if two_d => Box::new(Beale),
        "booth" if two_d => Box::new(Booth),
        "himmelblau" if two_d => Box::new(Himmelblau),
        "rastrigin" if dim >= 1 => Box::new(Rastrigin(dim)),
        "ackley" if dim >= 1 => Box::new(Ackley(dim)),
        "saddle" if two_d => Box::new(Saddle),
        "styblinski_tang" if dim >= 1 => Box::new(StyblinskiTang(dim)),
        _ => return None,
    })
}

/// The sphere Σ xᵢ² in `n` dimensions: the easiest convex bowl. Minimum 0 at the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sphere(pub usize);

impl Surface for Sphere {
    fn name(&self) -> &str {
        "sphere"
    }
    fn dim(&self) -> usize {
        self.0
    }
    fn value(&self, x: &[f64]) -> f64 {
        x.iter().map(|v| v * v).sum()
    }
    fn gradient(&self, x: &[f64], grad: &mut [f64]) {
        for (g, v) in grad.iter_mut().zip(x) {
            *g = 2.0 * v;
        }
    }
    fn minima(&self) -> Vec<Vec<f64>> {
        vec![vec![0.0; self.0]]
    }
    fn min_value(&self) -> f64 {
        0.0
    }
    fn default_start(&self) -> Vec<f64> {
        vec![1.0; self.0]
    }
    fn plot_bounds(&self) -> [(f64, f64); 2] {
        [(-2.0, 2.0), (-2.0, 2.0)]
    }
}

/// The quadratic ½ Σ dᵢ xᵢ² with curvatures `d = logspace(0, 4, n)`, i.e. dᵢ = 10^(4 i/(n−1)):
/// condition number 10⁴, the case where plain gradient descent crawls. Minimum 0 at the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IllConditionedQuadratic(pub usize);

impl IllConditionedQuadratic {
    /// The curvature dᵢ = 10^(4 i/(n−1)) of coordinate `i`, rounded as `torch.logspace(0, 4, n)[i]`
    /// computes it, which tracks the PyTorch reference runs more closely than numpy's rounding.
    pub fn curvature(&self, i: usize) -> f64 {
        let n = self.0;
        if n <= 1 {
            return 1.0;
        }
        // As torch.logspace: exponents of the first half count up from the start, those of the
        // second half count down from the end, so both ends are exact.
        let step = 4.0 / (n - 1) as f64;
        let exponent = if i < n / 2 { step * i as f64 } else { 4.0 - step * (n - 1 - i) as f64 };
        10f64.powf(exponent)
    }
}

impl Surface for IllConditionedQuadratic {
    fn name(&self) -> &str {
        "ill_conditioned_quadratic"
    }
    fn dim(&self) -> usize {
        self.0
    }
    fn value(&self, x: &[f64]) -> f64 {
        0.5 * x.iter().enumerate().map(|(i, v)| self.curvature(i) * v * v).sum::<f64>()
    }
    fn gradient(&self, x: &[f64], grad: &mut [f64]) {
        for (i, (g, v)) in grad.iter_mut().zip(x).enumerate() {
            *g = self.curvature(i) * v;
        }
    }
    fn minima(&self) -> Vec<Vec<f64>> {
        vec![vec![0.0; self.0]]
    }
    fn min_value(&self) -> f64 {
        0.0
    }
    fn default_start(&self) -> Vec<f64> {
        vec![1.0; self.0]
    }
    fn plot_bounds(&self) -> [(f64, f64); 2] {
        [(-2.0, 2.0), (-2.0, 2.0)]
    }
}

/// The Rosenbrock function Σ (1−xᵢ)² + 100 (xᵢ₊₁−xᵢ²)² in `n ≥ 2` dimensions: a curved, narrow
/// valley. Minimum 0 at (1, …, 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rosenbrock(pub usize);

impl Surface for Rosenbrock {
    fn name(&self) -> &str {
        "rosenbrock"
    }
    fn dim(&self) -> usize {
        self.0
    }
    fn value(&self, x: &[f64]) -> f64 {
        x.windows(2).map(|w| (1.0 - w[0]).powi(2) + 100.0 * (w[1] - w[0] * w[0]).powi(2)).sum()
    }
    fn gradient(&self, x: &[f64], grad: &mut [f64]) {
        grad.iter_mut().for_each(|g| *g = 0.0);
        for i in 0..x.len().saturating_sub(1) {
            let valley = x[i + 1] - x[i] * x[i];
            grad[i] += -2.0 * (1.0 - x[i]) - 400.0 * x[i] * valley;
            grad[i + 1] += 200.0 * valley;
        }
    }
    fn minima(&self) -> Vec<Vec<f64>> {
        vec![vec![1.0; self.0]]
    }
    fn min_value(&self) -> f64 {
        0.0
    }
    /// The classic start (−1.2, 1), repeated.
    fn default_start(&self) -> Vec<f64> {
        (0..self.0).map(|i| if i % 2 == 0 { -1.2 } else { 1.0 }).collect()
    }
    fn plot_bounds(&self) -> [(f64, f64); 2] {
        [(-2.0, 2.0), (-1.0, 3.0)]
    }
}

/// Beale's function (1.5−x+xy)² + (2.25−x+xy²)² + (2.625−x+xy³)²: flat plateaus and steep
/// ridges. Minimum 0 at (3, 0.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Beale;

impl Beale {
    const CONSTANTS: [f64; 3] = [1.5, 2.25, 2.625];
}

impl Surface for Beale {
    fn name(&self) -> &str {
        "beale"
    }
    fn dim(&self) -> usize {
        2
    }
    fn value(&self, p: &[f64]) -> f64 {
        let (x, y) = (p[0], p[1]);
        let mut y_power = 1.0;
        Self::CONSTANTS
            .iter()
            .map(|c| {
                y_power *= y;
                (c - x + x * y_power).powi(2)
            })
            .sum()
    }
    fn gradient(&self, p: &[f64], grad: &mut [f64]) {
        let (x, y) = (p[0], p[1]);
        let (mut gx, mut gy) = (0.0, 0.0);
        // Term k (1-based) is rₖ² with rₖ = cₖ − x + x yᵏ.
        let mut y_power_below = 1.0; // y^(k−1)
        for (k, c) in Self::CONSTANTS.iter().enumerate() {
            let y_power = y_power_below * y;
            let residual = c - x + x * y_power;
            gx += 2.0 * residual * (y_power - 1.0);
            gy += 2.0 * residual * x * (k + 1) as f64 * y_power_below;
            y_power_below = y_power;
        }
        grad[0] = gx;
        grad[1] = gy;
    }
    fn minima(&self) -> Vec<Vec<f64>> {
        vec![vec![3.0, 0.5]]
    }
    fn min_value(&self) -> f64 {
        0.0
    }
    fn default_start(&self) -> Vec<f64> {
        vec![1.0, 1.0]
    }
    fn plot_bounds(&self) -> [(f64, f64); 2] {
        [(-4.5, 4.5), (-4.5, 4.5)]
    }
}

/// Booth's function (x+2y−7)² + (2x+y−5)²: a tilted convex quadratic. Minimum 0 at (1, 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Booth;

impl Surface for Booth {
    fn name(&self) -> &str {
        "booth"
    }
    fn dim(&self) -> usize {
        2
    }
    fn value(&self, p: &[f64]) -> f64 {
        let (x, y) = (p[0], p[1]);
        (x + 2.0 * y - 7.0).powi(2) + (2.0 * x + y - 5.0).powi(2)
    }
    fn gradient(&self, p: &[f64], grad: &mut [f64]) {
        let (x, y) = (p[0], p[1]);
        let (a, b) = (x + 2.0 * y - 7.0, 2.0 * x + y - 5.0);
        grad[0] = 2.0 * a + 4.0 * b;
        grad[1] = 4.0 * a + 2.0 * b;
    }
    fn minima(&self) -> Vec<Vec<f64>> {
        vec![vec![1.0, 3.0]]
    }
    fn min_value(&self) -> f64 {
        0.0
    }
    fn default_start(&self) -> Vec<f64> {
        vec![-5.0, -5.0]
    }
    fn plot_bounds(&self) -> [(f64, f64); 2] {
        [(-10.0, 10.0), (-10.0, 10.0)]
    }
}

/// Himmelblau's function (x²+y−11)² + (x+y²−7)²: four global minima, all of value 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Himmelblau;

impl Surface for Himmelblau {
    fn name(&self) -> &str {
        "himmelblau"
    }
    fn dim(&self) -> usize {
        2
    }
    fn value(&self, p: &[f64]) -> f64 {
        let (x, y) = (p[0], p[1]);
        (x * x + y - 11.0).powi(2) + (x + y * y - 7.0).powi(2)
    }
    fn gradient(&self, p: &[f64], grad: &mut [f64]) {
        let (x, y) = (p[0], p[1]);
        let (a, b) = (x * x + y - 11.0, x + y * y - 7.0);
        grad[0] = 4.0 * x * a + 2.0 * b;
        grad[1] = 2.0 * a + 4.0 * y * b;
    }
    /// The four minima; all but (3, 2) are irrational and given to the nearest `f64`.
    fn minima(&self) -> Vec<Vec<f64>> {
        vec![
            vec![3.0, 2.0],
            vec![-2.805118086952745, 3.131312518250573],
            vec![-3.779310253377747, -3.2831859912861696],
            vec![3.5844283403304917, -1.8481265269644036],
        ]
    }
    fn min_value(&self) -> f64 {
        0.0
    }
    fn default_start(&self) -> Vec<f64> {
        vec![0.0, 0.0]
    }
    fn plot_bounds(&self) -> [(f64, f64); 2] {
        [(-5.0, 5.0), (-5.0, 5.0)]
    }
}

/// The Rastrigin function 10 n + Σ (xᵢ² − 10 cos 2πxᵢ): a bowl covered in a regular grid of local
/// minima. Global minimum 0 at the origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rastrigin(pub usize);

impl Surface for Rastrigin {
    fn name(&self) -> &str {
        "rastrigin"
    }
    fn dim(&self) -> usize {
        self.0
    }
    fn value(&self, x: &[f64]) -> f64 {
        10.0 * x.len() as f64 + x.iter().map(|v| v * v - 10.0 * (2.0 * PI * v).cos()).sum::<f64>()
    }
    fn gradient(&self, x: &[f64], grad: &mut [f64]) {
        for (g, v) in grad.iter_mut().zip(x) {
            *g = 2.0 * v + 20.0 * PI * (2.0 * PI * v).sin();
        }
    }
    fn minima(&self) -> Vec<Vec<f64>> {
        vec![vec![0.0; self.0]]
    }
    fn min_value(&self) -> f64 {
        0.0
    }
    fn default_start(&self) -> Vec<f64> {
        vec![2.2; self.0]
    }
    fn plot_bounds(&self) -> [(f64, f64); 2] {
        [(-5.12, 5.12), (-5.12, 5.12)]
    }
}

/// The Ackley function −20 exp(−0.2 √(Σxᵢ²/n)) − exp(Σ cos(2πxᵢ)/n) + 20 + e: a nearly flat outer
/// region with a deep hole at the origin, where its minimum 0 lies.
///
/// It is not differentiable at the origin (a cone tip); [`Surface::gradient`] returns 0 there,
/// which is a subgradient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ackley(pub usize);

impl Surface for Ackley {
    fn name(&self) -> &str {
        "ackley"
    }
    fn dim(&self) -> usize {
        self.0
    }
    fn value(&self, x: &[f64]) -> f64 {
        let n = x.len().max(1) as f64;
        let radius = (x.iter().map(|v| v * v).sum::<f64>() / n).sqrt();
        let waves = x.iter().map(|v| (2.0 * PI * v).cos()).sum::<f64>() / n;
        -20.0 * (-0.2 * radius).exp() - waves.exp() + 20.0 + E
    }
    fn gradient(&self, x: &[f64], grad: &mut [f64]) {
        let n = x.len().max(1) as f64;
        let radius = (x.iter().map(|v| v * v).sum::<f64>() / n).sqrt();
        let waves = (x.iter().map(|v| (2.0 * PI * v).cos()).sum::<f64>() / n).exp();
        // d/dxᵢ of −20 exp(−0.2 r) is 4 exp(−0.2 r) xᵢ / (n r); at r = 0 take the subgradient 0.
        let cone = if radius > 0.0 { 4.0 * (-0.2 * radius).exp() / (n * radius) } else { 0.0 };
        for (g, v) in grad.iter_mut().zip(x) {
            *g = cone * v + waves * 2.0 * PI * (2.0 * PI * v).sin() / n;
        }
    }
    fn minima(&self) -> Vec<Vec<f64>> {
        vec![vec![0.0; self.0]]
    }
    fn min_value(&self) -> f64 {
        0.0
    }
    fn default_start(&self) -> Vec<f64> {
        vec![2.5; self.0]
    }
    fn plot_bounds(&self) -> [(f64, f64); 2] {
        [(-5.0, 5.0), (-5.0, 5.0)]
    }
}

/// The saddle x² − y²: unbounded below, so it has no minimum — [`Surface::minima`] is empty and
/// [`Surface::min_value`] is `-∞`. Its only stationary point is the saddle at the origin
/// ([`Saddle::saddle_point`]), which gradient descent started on the x-axis converges to and
/// which any perturbation in y escapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Saddle;

impl Saddle {
    /// The stationary point (0, 0), where the gradient vanishes but which is no minimum.
    pub fn saddle_point(&self) -> Vec<f64> {
        vec![0.0, 0.0]
    }
}

impl Surface for Saddle {
    fn name(&self) -> &str {
        "saddle"
    }
    fn dim(&self) -> usize {
        2
    }
    fn value(&self, p: &[f64]) -> f64 {
        p[0] * p[0] - p[1] * p[1]
    }
    fn gradient(&self, p: &[f64], grad: &mut [f64]) {
        grad[0] = 2.0 * p[0];
        grad[1] = -2.0 * p[1];
    }
    /// Empty: the surface is unbounded below.
    fn minima(&self) -> Vec<Vec<f64>> {
        Vec::new()
    }
    /// `-∞`: the surface is unbounded below.
    fn min_value(&self) -> f64 {
        f64::NEG_INFINITY
    }
    /// Slightly off the x-axis, so that descent first heads for the saddle and then escapes it.
    fn default_start(&self) -> Vec<f64> {
        vec![1.5, 1e-3]
    }
    fn plot_bounds(&self) -> [(f64, f64); 2] {
        [(-2.0, 2.0), (-2.0, 2.0)]
    }
}

/// The Styblinski–Tang function ½ Σ (xᵢ⁴ − 16 xᵢ² + 5 xᵢ): 2ⁿ local minima, the global one at
/// xᵢ = −2.9035… (the negative root of 4x³ − 32x + 5) with value −39.166… n.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StyblinskiTang(pub usize);

impl StyblinskiTang {
    /// The minimizing coordinate, the most negative root of 4x³ − 32x + 5 = 0.
    pub const ARGMIN: f64 = -2.903534027771177;
    /// The minimum per coordinate, ½ (x⁴ − 16 x² + 5 x) at [`Self::ARGMIN`].
    pub const MIN_PER_DIM: f64 = -39.16616570377141;
}

impl Surface for StyblinskiTang {
    fn name(&self) -> &str {
        "styblinski_tang"
    }
    fn dim(&self) -> usize {
        self.0
    }
    fn value(&self, x: &[f64]) -> f64 {
        0.5 * x.iter().map(|v| v.powi(4) - 16.0 * v * v + 5.0 * v).sum::<f64>()
    }
    fn gradient(&self, x: &[f64], grad: &mut [f64]) {
        for (g, v) in grad.iter_mut().zip(x) {
            *g = 2.0 * v.powi(3) - 16.0 * v + 2.5;
        }
    }
    fn minima(&self) -> Vec<Vec<f64>> {
        vec![vec![Self::ARGMIN; self.0]]
    }
    fn min_value(&self) -> f64 {
        Self::MIN_PER_DIM * self.0 as f64
    }
    fn default_start(&self) -> Vec<f64> {
        vec![0.0; self.0]
    }
    fn plot_bounds(&self) -> [(f64, f64); 2] {
        [(-5.0, 5.0), (-5.0, 5.0)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_builds_with_its_dimension() {
        for name in NAMES {
            let surface = by_name(name, 2).expect(name);
            assert_eq!(surface.name(), name);
            assert_eq!(surface.dim(), 2);
        }
        assert!(by_name("beale", 3).is_none());
        assert!(by_name("rosenbrock", 1).is_none());
        assert!(by_name("sphere", 0).is_none());
        assert!(by_name("nope", 2).is_none());
    }

    #[test]
    fn quadratic_curvatures_are_logspace() {
        let q = IllConditionedQuadratic(5);
        let d: Vec<f64> = (0..5).map(|i| q.curvature(i)).collect();
        assert_eq!(d, vec![1.0, 10.0, 100.0, 1000.0, 10000.0]);
        assert_eq!(IllConditionedQuadratic(1).curvature(0), 1.0);
    }

    #[test]
    fn known_values() {
        assert!((Rosenbrock(2).value(&[-1.2, 1.0]) - 24.2).abs() < 1e-12);
        assert!((Beale.value(&[1.0, 1.0]) - 14.203125).abs() < 1e-12);
        assert_eq!(Booth.value(&[0.0, 0.0]), 74.0);
        assert_eq!(Himmelblau.value(&[0.0, 0.0]), 170.0);
        assert_eq!(Saddle.value(&[1.0, 2.0]), -3.0);
        let mut g = [1.0; 2];
        Saddle.gradient(&Saddle.saddle_point(), &mut g);
        assert_eq!(g, [0.0, 0.0]);
    }

    #[test]
    fn f32_bridge_rounds_the_f64_gradient() {
        let mut g = [0.0f32; 2];
        Rosenbrock(2).gradient_f32(&[-1.5, 2.0], &mut g);
        let mut g64 = [0.0; 2];
        Rosenbrock(2).gradient(&[-1.5, 2.0], &mut g64);
        assert_eq!(g, [g64[0] as f32, g64[1] as f32]);
        assert_eq!(Booth.value_f32(&[0.0, 0.0]), 74.0);
    }
}
