//! `gradus surface FUNCTION`: runs first-order optimizers on a 2-D test surface from one start
//! point, prints where each ended and how it got there, and draws their paths on the surface's
//! contour map.
//!
//! This is where gradus shows the behaviour that loss curves hide: plain gradient descent crawling
//! along Rosenbrock's valley while momentum and Adam run down it, a learning rate too high for the
//! curvature overshooting and diverging (`sgd:0.003` on Rosenbrock), momentum escaping the saddle
//! point that plain descent lingers on, and optimizers settling in different minima of Himmelblau's
//! function or in local minima of Rastrigin's.

use std::path::Path;

use gradus::optim::{from_options, Optimizer};
use gradus::surfaces::{by_name, Surface, NAMES};
use serde_json::{json, Value};

use crate::args::SurfaceArgs;
use crate::plot;

/// The optimizers run when `--optimizers` is absent.
const DEFAULT_OPTIMIZERS: [&str; 3] = ["sgd", "momentum", "adam"];

/// Steps per optimizer when `--steps` is absent.
const DEFAULT_STEPS: usize = 500;

/// The most steps accepted per optimizer.
const MAX_STEPS: usize = 1_000_000;

/// A run has converged once its loss stays within this of the surface's global minimum value.
const TOLERANCE: f64 = 1e-4;

/// A run at rest this far above the global minimum value is stuck in a local minimum (or on a saddle).
const STUCK_GAP: f64 = 1e-2;

/// A run has diverged once a coordinate is larger than this (far outside every surface's view).
const DIVERGENCE_LIMIT: f64 = 1e4;

/// The size of the contour plot, in pixels.
const PLOT_SIZE: (u32, u32) = (1100, 850);

/// One optimizer to run: its name and learning rate, and how the user spelled it.
#[derive(Debug, Clone, PartialEq)]
struct Spec {
    name: String,
    lr: f64,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    /// Within [`TOLERANCE`] of the global minimum value from this step on.
    Converged { step: usize },
    /// Non-finite or beyond [`DIVERGENCE_LIMIT`] at this step (the run stopped there).
    Diverged { step: usize },
    /// Left the view of a surface unbounded below at this step (the run stopped there).
    Escaped { step: usize },
    /// Came to rest above the global minimum value: a local minimum (or a saddle point).
    Stuck,
    /// Still moving when the steps ran out.
    NotConverged,
}

impl Outcome {
    fn describe(&self) -> String {
        match self {
            Outcome::Converged { step } => format!("converged in {step} steps"),
            Outcome::Diverged { step } => format!("diverged at step {step}"),
            Outcome::Escaped { step } => format!("escaped in {step} steps"),
            Outcome::Stuck => "stuck (local minimum or saddle)".to_string(),
            Outcome::NotConverged => "did not converge".to_string(),
        }
    }

    fn key(&self) -> &'static str {
        match self {
            Outcome::Converged { .. } => "converged",
            Outcome::Diverged { .. } => "diverged",
            Outcome::Escaped { .. } => "escaped",
            Outcome::Stuck => "stuck",
            Outcome::NotConverged => "did_not_converge",
        }
    }

    fn step(&self) -> Option<usize> {
        match *self {
            Outcome::Converged { step } | Outcome::Diverged { step } | Outcome::Escaped { step } => Some(step),
            Outcome::Stuck | Outcome::NotConverged => None,
        }
    }
}

/// One optimizer's run: its path (the start, then the point after each step) and outcome.
#[derive(Debug, Clone)]
struct Run {
    label: String,
    spec: Spec,
    path: Vec<[f64; 2]>,
    loss: f64,
    outcome: Outcome,
}

/// Runs `gradus surface` with `args`; `quiet` leaves out everything but the table (or JSON) and
/// errors. Errors are messages for the user.
pub fn run(args: &SurfaceArgs, quiet: bool) -> Result<(), String> {
    let function = canonical_name(&args.function);
    let surface = by_name(function, 2).ok_or_else(|| {
        format!(
            "unknown test function `{}`: expected one of {} (or quadratic)",
            gradus::data::quote_cell(&args.function),
            NAMES.join(", ")
        )
    })?;
    if let Some(lr) = args.lr {
        check_lr("--lr", lr)?;
    }
    let start = match &args.start {
        Some(start) => parse_start(start)?,
        None => {
            let start = surface.default_start();
            [start[0], start[1]]
        }
    };
    let steps = args.steps.unwrap_or(DEFAULT_STEPS);
    if steps == 0 || steps > MAX_STEPS {
        return Err(format!("invalid value {steps} for --steps: expected a number of steps from 1 to {MAX_STEPS}"));
    }
    if let Some(path) = &args.plot {
        check_plot_path(path)?;
    }
    crate::paths::Files::new().output("--plot", args.plot.as_deref()).check().map_err(|e| e.message)?;
    let requested: Vec<String> = match &args.optimizers {
        Some(list) if list.is_empty() || list.iter().any(|s| s.trim().is_empty()) => {
            return Err("--optimizers: found an empty list or list item: expected a comma-separated list of \
                        optimizers, e.g. sgd,adam:0.05"
                .to_string())
        }
        Some(list) => list.iter().map(|s| s.trim().to_string()).collect(),
        None => DEFAULT_OPTIMIZERS.iter().map(|s| s.to_string()).collect(),
    };
    let mut runs = Vec::with_capacity(requested.len());
    for text in &requested {
        let spec = parse_spec(text, args.lr, function)?;
        let optimizer = build_optimizer(&spec)?;
        runs.push(simulate(surface.as_ref(), optimizer, spec, text.clone(), start, steps));
    }

    if args.json {
        let report = json!({
            "function": function,
            "start": start,
            "steps": steps,
            "min_value": finite_or_null(surface.min_value()),
            "tolerance": TOLERANCE,
            "runs": runs.iter().map(run_json).collect::<Vec<Value>>(),
        });
        println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
    } else {
        print_table(function, start, steps, &runs);
    }

    if let Some(path) = &args.plot {
        let bounds = view(surface.as_ref(), start);
        let paths: Vec<(String, Vec<[f64; 2]>)> =
            runs.iter().map(|r| (format!("{} (lr {})", r.spec.name, short(r.spec.lr)), r.path.clone())).collect();
        let minima: Vec<[f64; 2]> = surface.minima().iter().map(|m| [m[0], m[1]]).collect();
        let title = format!("{function}: {steps} steps from ({}, {})", short(start[0]), short(start[1]));
        plot::draw_contour(path, &title, surface.as_ref(), bounds, &paths, &minima, PLOT_SIZE)?;
        if !quiet {
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}

/// The surface's name in [`gradus::surfaces::by_name`]'s spelling (`quadratic` is short for
/// `ill_conditioned_quadratic`).
fn canonical_name(name: &str) -> &str {
    match name {
        "quadratic" => "ill_conditioned_quadratic",
        other => other,
    }
}

fn check_lr(what: &str, lr: f64) -> Result<(), String> {
    if lr.is_finite() && lr > 0.0 {
        Ok(())
    } else {
        Err(format!("invalid value {lr} for {what}: expected a finite number > 0"))
    }
}

fn parse_start(values: &[f64]) -> Result<[f64; 2], String> {
    match values {
        [x, y] if x.is_finite() && y.is_finite() => Ok([*x, *y]),
        _ => Err(format!(
            "invalid --start {}: expected two finite numbers `x,y`",
            values.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(",")
        )),
    }
}

/// Fails early, before any work, on a plot name the plotter would refuse.
fn check_plot_path(path: &Path) -> Result<(), String> {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("png" | "svg") => match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() && !parent.is_dir() => Err(format!(
                "cannot write a plot to `{}`: expected a file in an existing directory, `{}` is not one",
                path.display(),
                parent.display()
            )),
            _ => Ok(()),
        },
        _ => Err(format!("cannot write a plot to `{}`: expected a file name ending in .png or .svg", path.display())),
    }
}

/// The optimizer names `surface` accepts: the first-order optimizers plus `momentum` and
/// `nesterov` (SGD with momentum 0.9, heavy-ball or Nesterov).
fn known_optimizers() -> Vec<&'static str> {
    let mut names = vec!["sgd", "momentum", "nesterov"];
    names.extend(gradus::optim::NAMES.iter().copied().filter(|n| *n != "sgd"));
    names
}

/// Parses `name` or `name:lr`; a name without a learning rate takes `--lr`, else its default on
/// `function`.
fn parse_spec(text: &str, lr: Option<f64>, function: &str) -> Result<Spec, String> {
    let shown = gradus::data::quote_cell(text);
    let (name, explicit_lr) = match text.split_once(':') {
        Some((name, lr_text)) => {
            let lr: f64 = lr_text.trim().parse().map_err(|_| {
                format!(
                    "invalid learning rate `{}` in `{shown}`: expected a number, as in `adam:0.05`",
                    gradus::data::quote_cell(lr_text)
                )
            })?;
            check_lr(&format!("`{shown}`"), lr)?;
            (name.trim(), Some(lr))
        }
        None => (text, None),
    };
    let name = name.to_ascii_lowercase();
    if name == "lbfgs" {
        return Err("lbfgs is not run by `surface`: it searches along lines rather than taking steps; expected a first-order optimizer".to_string());
    }
    if !known_optimizers().contains(&name.as_str()) {
        return Err(format!(
            "unknown optimizer `{}`: expected one of {}",
            gradus::data::quote_cell(&name),
            known_optimizers().join(", ")
        ));
    }
    let lr = explicit_lr.or(lr).unwrap_or_else(|| default_lr(function, &name));
    Ok(Spec { name, lr })
}

/// A learning rate per optimizer and surface that makes the default run instructive: stable for
/// gradient descent (below 2 / the largest curvature along the way), and a step of a few hundredths
/// of the view for the optimizers whose step size is about the learning rate (Adam and its kin,
/// Lion).
fn default_lr(function: &str, optimizer: &str) -> f64 {
    // (plain gradient descent, momentum 0.9, step-normalized optimizers)
    let (descent, momentum, normalized) = match function {
        "sphere" => (0.05, 0.02, 0.05),
        "ill_conditioned_quadratic" => (1.5e-4, 1e-4, 0.05),
        "rosenbrock" => (1e-3, 2.5e-3, 0.1),
        "beale" => (1e-2, 2e-3, 0.05),
        "booth" => (0.02, 0.01, 0.1),
        "himmelblau" => (0.01, 0.003, 0.05),
        "rastrigin" => (0.002, 0.001, 0.05),
        "ackley" => (0.05, 0.02, 0.05),
        "saddle" => (0.005, 0.005, 0.02),
        "styblinski_tang" => (0.01, 0.005, 0.05),
        _ => (0.01, 0.005, 0.05),
    };
    match optimizer {
        "sgd" => descent,
        "momentum" | "nesterov" => momentum,
        // RMSprop's first steps are about 10× its learning rate (its average of squares starts at 0).
        "rmsprop" => normalized / 10.0,
        // Adagrad's steps shrink as 1/√t, so it starts larger.
        "adagrad" => normalized * 10.0,
        // Adadelta's steps grow from √eps; PyTorch's default lr 1.0 is the usual choice.
        "adadelta" => 1.0,
        "lion" => normalized / 2.0,
        // RAdam's first steps (before its variance estimate is trusted) are plain momentum steps of
        // lr × gradient, so it needs a learning rate that gradient descent survives.
        "radam" => normalized.min(descent),
        _ => normalized,
    }
}

fn build_optimizer(spec: &Spec) -> Result<Box<dyn Optimizer>, String> {
    let (name, options) = match spec.name.as_str() {
        "momentum" => ("sgd", json!({ "lr": spec.lr, "momentum": 0.9 })),
        "nesterov" => ("sgd", json!({ "lr": spec.lr, "momentum": 0.9, "nesterov": true })),
        name => (name, json!({ "lr": spec.lr })),
    };
    from_options(name, &options).map_err(|e| format!("cannot build {}: {e}", spec.name))
}

/// Runs `optimizer` on `surface` from `start` for up to `steps` steps, in `f32` as training does.
fn simulate(
    surface: &dyn Surface,
    mut optimizer: Box<dyn Optimizer>,
    spec: Spec,
    label: String,
    start: [f64; 2],
    steps: usize,
) -> Run {
    let min_value = surface.min_value();
    let bounded = min_value.is_finite();
    let view = surface.plot_bounds();
    let mut params = [start[0] as f32, start[1] as f32];
    let mut grads = [0.0f32; 2];
    let mut path = Vec::with_capacity(steps + 1);
    path.push([f64::from(params[0]), f64::from(params[1])]);
    let mut within_since: Option<usize> = None;
    let mut stopped: Option<Outcome> = None;
    for step in 1..=steps {
        surface.gradient_f32(&params, &mut grads);
        optimizer.step(&mut params, &grads);
        let point = [f64::from(params[0]), f64::from(params[1])];
        path.push(point);
        let loss = surface.value(&point);
        let escaped = point.iter().any(|v| !v.is_finite() || v.abs() > DIVERGENCE_LIMIT) || !loss.is_finite();
        if escaped {
            stopped = Some(Outcome::Diverged { step });
            break;
        }
        if bounded {
            if loss - min_value <= TOLERANCE {
                within_since.get_or_insert(step);
            } else {
                within_since = None;
            }
        } else if !in_view(point, view) {
            stopped = Some(Outcome::Escaped { step });
            break;
        }
    }
    let end = *path.last().unwrap_or(&start);
    let loss = surface.value(&end);
    let outcome = stopped.unwrap_or_else(|| match within_since {
        Some(step) => Outcome::Converged { step },
        None if loss - min_value >= STUCK_GAP && at_rest(surface, &path) => Outcome::Stuck,
        None => Outcome::NotConverged,
    });
    Run { label, spec, path, loss, outcome }
}

fn in_view(point: [f64; 2], view: [(f64, f64); 2]) -> bool {
    (view[0].0..=view[0].1).contains(&point[0]) && (view[1].0..=view[1].1).contains(&point[1])
}

/// Whether a run has come to rest: over its last tenth it stayed within 1% of the view's extent
/// of its mean, and the gradient at that mean is small. Oscillating optimizers circle a minimum,
/// so the mean, not the end point, is what sits on it.
fn at_rest(surface: &dyn Surface, path: &[[f64; 2]]) -> bool {
    let tail = &path[path.len() - (path.len() / 10).max(2).min(path.len())..];
    let n = tail.len() as f64;
    let mean = [tail.iter().map(|p| p[0]).sum::<f64>() / n, tail.iter().map(|p| p[1]).sum::<f64>() / n];
    let view = surface.plot_bounds();
    let extent = (view[0].1 - view[0].0).max(view[1].1 - view[1].0);
    let spread = tail.iter().map(|p| ((p[0] - mean[0]).powi(2) + (p[1] - mean[1]).powi(2)).sqrt()).fold(0.0, f64::max);
    let mut gradient = [0.0; 2];
    surface.gradient(&mean, &mut gradient);
    let gradient_norm = (gradient[0].powi(2) + gradient[1].powi(2)).sqrt();
    spread <= 0.01 * extent && gradient_norm <= 1e-2
}

/// The view of the contour plot: the surface's usual view, widened to show the start.
fn view(surface: &dyn Surface, start: [f64; 2]) -> [(f64, f64); 2] {
    let mut bounds = surface.plot_bounds();
    for (axis, range) in bounds.iter_mut().enumerate() {
        let margin = 0.05 * (range.1 - range.0);
        if start[axis] < range.0 {
            range.0 = start[axis] - margin;
        }
        if start[axis] > range.1 {
            range.1 = start[axis] + margin;
        }
    }
    bounds
}

fn finite_or_null(value: f64) -> Value {
    if value.is_finite() {
        json!(value)
    } else {
        Value::Null
    }
}

fn run_json(run: &Run) -> Value {
    let end = run.path.last().copied().unwrap_or([f64::NAN; 2]);
    json!({
        "optimizer": run.spec.name,
        "spec": run.label,
        "lr": run.spec.lr,
        "end": [finite_or_null(end[0]), finite_or_null(end[1])],
        "loss": finite_or_null(run.loss),
        "outcome": run.outcome.key(),
        "step": run.outcome.step(),
        "steps_to_converge": match run.outcome { Outcome::Converged { step } => Some(step), _ => None },
        "path": run.path.iter().map(|p| json!([finite_or_null(p[0]), finite_or_null(p[1])])).collect::<Vec<Value>>(),
    })
}

/// A number in at most 4 significant digits, without trailing zeros.
fn short(value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    if value != 0.0 && !(1e-3..1e5).contains(&value.abs()) {
        return format!("{value:.3e}");
    }
    let text = format!("{:.4}", value);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_string()
    } else {
        text.to_string()
    }
}

fn print_table(function: &str, start: [f64; 2], steps: usize, runs: &[Run]) {
    println!("{function} from ({}, {}), {steps} steps", short(start[0]), short(start[1]));
    let rows: Vec<[String; 5]> = runs
        .iter()
        .map(|run| {
            let end = run.path.last().copied().unwrap_or([f64::NAN; 2]);
            [
                run.spec.name.clone(),
                short(run.spec.lr),
                format!("({}, {})", short(end[0]), short(end[1])),
                short(run.loss),
                run.outcome.describe(),
            ]
        })
        .collect();
    let header = ["optimizer", "lr", "end point", "loss", "result"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 5]| {
        let text: Vec<String> = cells.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", text.join("  ").trim_end());
    };
    line(header);
    for row in &rows {
        line([&row[0], &row[1], &row[2], &row[3], &row[4]]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_with_and_without_learning_rates() {
        assert_eq!(parse_spec("adam:0.5", None, "sphere").unwrap(), Spec { name: "adam".into(), lr: 0.5 });
        assert_eq!(parse_spec("sgd", Some(0.2), "sphere").unwrap().lr, 0.2);
        assert_eq!(parse_spec("momentum", None, "rosenbrock").unwrap().lr, 2.5e-3);
        assert!(parse_spec("adam:-1", None, "sphere").is_err());
        assert!(parse_spec("adam:x", None, "sphere").is_err());
        assert!(parse_spec("newton", None, "sphere").is_err());
        assert!(parse_spec("lbfgs", None, "sphere").is_err());
    }

    fn run_on(function: &str, spec: &str, steps: usize) -> Run {
        let surface = by_name(function, 2).unwrap();
        let spec = parse_spec(spec, None, function).unwrap();
        let optimizer = build_optimizer(&spec).unwrap();
        let start = surface.default_start();
        simulate(surface.as_ref(), optimizer, spec, String::new(), [start[0], start[1]], steps)
    }

    #[test]
    fn too_high_a_learning_rate_diverges_on_rosenbrock() {
        assert!(matches!(run_on("rosenbrock", "sgd:0.01", 500).outcome, Outcome::Diverged { .. }));
    }

    #[test]
    fn gradient_descent_converges_on_the_sphere() {
        let run = run_on("sphere", "sgd", 500);
        assert!(matches!(run.outcome, Outcome::Converged { .. }), "{:?}", run.outcome);
        assert!(run.loss < TOLERANCE);
    }

    #[test]
    fn momentum_escapes_the_saddle_sooner_than_sgd() {
        let sgd = run_on("saddle", "sgd", 500);
        let momentum = run_on("saddle", "momentum", 500);
        let escaped_at = |run: &Run| match run.outcome {
            Outcome::Escaped { step } => step,
            _ => usize::MAX,
        };
        assert!(escaped_at(&momentum) < escaped_at(&sgd), "{:?} vs {:?}", momentum.outcome, sgd.outcome);
    }
}
