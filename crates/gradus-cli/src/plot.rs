//! Plots drawn in Rust with plotters: panels of line series (loss curves, comparisons, range tests)
//! and contour maps of test surfaces with the paths optimizers took across them.
//!
//! The format follows the file's extension (`.png` or `.svg`). Every plot is drawn in memory and
//! written atomically (a temporary file beside the target, renamed onto it), so a failed or
//! interrupted plot never leaves a half-written picture (or replaces a good one).
//!
//! This module depends on plotters and the gradus library only, never on other modules of the
//! command line, so its tests can include it on its own.

use std::ops::Range;
use std::path::Path;

use ::image::ImageEncoder;

use gradus::surfaces::Surface;
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

/// One line of a panel: `y` against `x`, with a legend label (empty: no legend entry).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// Legend label.
    pub label: String,
    /// Horizontal coordinates.
    pub x: Vec<f64>,
    /// Vertical coordinates, one per `x` (extra values on either side are ignored).
    pub y: Vec<f64>,
}

/// One chart: axes, their labels and scales, and the series drawn on them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Panel {
    /// Caption above the chart.
    pub title: String,
    /// Label of the horizontal axis.
    pub x_label: String,
    /// Label of the vertical axis.
    pub y_label: String,
    /// The lines, each in its own colour.
    pub series: Vec<Series>,
    /// Logarithmic horizontal axis (points with `x <= 0` are dropped).
    pub log_x: bool,
    /// Logarithmic vertical axis (points with `y <= 0` are dropped).
    pub log_y: bool,
}

/// Draws `panels` in a grid (as square as possible, row by row) under `title`, to a `size` (width,
/// height in pixels) PNG or SVG file chosen by `path`'s extension.
///
/// Non-finite points (and non-positive ones on logarithmic axes) are dropped; a series or panel
/// without points is drawn as empty axes. The file is written atomically.
/// A picture size chosen on the command line (`--plot-size`), replacing each command's default.
static SIZE_OVERRIDE: std::sync::OnceLock<(u32, u32)> = std::sync::OnceLock::new();

/// Makes every later picture `size` pixels, whatever size its command asks for.
pub fn set_size_override(size: (u32, u32)) {
    let _ = SIZE_OVERRIDE.set(size);
}

fn effective_size(size: (u32, u32)) -> (u32, u32) {
    SIZE_OVERRIDE.get().copied().unwrap_or(size)
}

pub fn draw_panels(path: &Path, title: &str, panels: &[Panel], size: (u32, u32)) -> Result<(), String> {
    write_atomically(path, effective_size(size), &PanelsPicture { title, panels })
}

/// Draws a filled contour map of the 2-D `surface` over `bounds` (`[(x_min, x_max), (y_min,
/// y_max)]`), each optimizer's path in `paths` (label, points) as a coloured line from a hollow
/// circle (its start) to a filled dot (its end), and every point of `minima` as a star, with a
/// legend and a colour bar, to a `size` PNG or SVG file chosen by `path`'s extension.
///
/// Contour levels are spaced logarithmically above the lowest value in view when the surface's
/// values are skewed (most of the view far below its highest value, as in Rosenbrock's valley),
/// and linearly otherwise. Path points that are not finite are dropped and lines are clipped to
/// the view. The file is written atomically.
#[allow(clippy::too_many_arguments)]
pub fn draw_contour(
    path: &Path,
    title: &str,
    surface: &dyn Surface,
    bounds: [(f64, f64); 2],
    paths: &[(String, Vec<[f64; 2]>)],
    minima: &[[f64; 2]],
    size: (u32, u32),
) -> Result<(), String> {
    if surface.dim() != 2 {
        return Err(format!(
            "cannot draw a contour map of `{}` in {} dimensions: expected a 2-D surface",
            surface.name(),
            surface.dim()
        ));
    }
    for (axis, (lo, hi)) in ["x", "y"].iter().zip(bounds) {
        if !(lo.is_finite() && hi.is_finite() && lo < hi) {
            return Err(format!(
                "cannot draw a contour map over {axis} in [{lo}, {hi}]: expected finite bounds with min < max"
            ));
        }
    }
    write_atomically(path, effective_size(size), &ContourPicture { title, surface, bounds, paths, minima })
}

/// Distinct colours (Tableau 10), assigned to series in order.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn palette(index: usize) -> RGBColor {
    PALETTE[index % PALETTE.len()]
}

/// The smallest and largest picture accepted, per side, in pixels.
const MIN_SIDE: u32 = 100;
const MAX_SIDE: u32 = 16_384;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Png,
    Svg,
}

fn format_of(path: &Path) -> Result<Format, String> {
    let extension = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("png") => Ok(Format::Png),
        Some("svg") => Ok(Format::Svg),
        _ => Err(format!("cannot write a plot to `{}`: expected a file name ending in .png or .svg", path.display())),
    }
}

/// Something that draws itself on any plotters backend.
trait Picture {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String>;
}

fn drawing_error<E: std::fmt::Display>(error: E) -> String {
    error.to_string()
}

/// Renders `picture` in memory and writes it with [`gradus::io::write_atomic`] (a temporary file
/// beside `path`, renamed onto it): on any failure, or an interruption, `path` is left as it was
/// and no temporary file remains.
fn write_atomically<P: Picture>(path: &Path, size: (u32, u32), picture: &P) -> Result<(), String> {
    let format = format_of(path)?;
    let (width, height) = size;
    if !(MIN_SIDE..=MAX_SIDE).contains(&width) || !(MIN_SIDE..=MAX_SIDE).contains(&height) {
        return Err(format!(
            "cannot write a plot to `{}` of {width}×{height} pixels: expected each side between {MIN_SIDE} and {MAX_SIDE}",
            path.display()
        ));
    }
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    if !directory.is_dir() {
        return Err(format!(
            "cannot write a plot to `{}`: expected a file in an existing directory, `{}` is not one",
            path.display(),
            directory.display()
        ));
    }
    render(format, size, picture)
        .and_then(|bytes| gradus::io::write_atomic(path, &bytes).map_err(|e| e.to_string()))
        .map_err(|problem| {
            format!(
                "could not write the plot to `{}` ({problem}): expected a writable file in an existing directory",
                path.display()
            )
        })
}

/// The picture's file contents: PNG or SVG.
fn render<P: Picture>(format: Format, size: (u32, u32), picture: &P) -> Result<Vec<u8>, String> {
    match format {
        Format::Png => {
            let mut pixels = vec![0u8; size.0 as usize * size.1 as usize * 3];
            {
                let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
                picture.draw(&root)?;
                root.present().map_err(drawing_error)?;
            }
            let mut bytes = Vec::new();
            ::image::codecs::png::PngEncoder::new(&mut bytes)
                .write_image(&pixels, size.0, size.1, ::image::ExtendedColorType::Rgb8)
                .map_err(drawing_error)?;
            Ok(bytes)
        }
        Format::Svg => {
            let mut text = String::new();
            {
                let root = SVGBackend::with_string(&mut text, size).into_drawing_area();
                picture.draw(&root)?;
                root.present().map_err(drawing_error)?;
            }
            Ok(text.into_bytes())
        }
    }
}

/// Font sizes that grow with the picture: (title, caption, labels).
fn font_sizes(area: (u32, u32)) -> (u32, u32, u32) {
    let side = area.0.min(area.1) as f64;
    let label = (side / 45.0).clamp(11.0, 22.0);
    ((label * 1.6) as u32, (label * 1.25) as u32, label as u32)
}

/// A short tick label: plain for moderate magnitudes, scientific for tiny or huge ones.
fn tick(value: f64) -> String {
    if value == 0.0 || !value.is_finite() {
        return if value == 0.0 { "0".to_string() } else { value.to_string() };
    }
    let magnitude = value.abs();
    if !(1e-3..1e5).contains(&magnitude) {
        let text = format!("{value:.1e}");
        return text.replace(".0e", "e");
    }
    let text = if magnitude >= 100.0 {
        format!("{value:.0}")
    } else if magnitude >= 10.0 {
        format!("{value:.1}")
    } else if magnitude >= 1.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.3}")
    };
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

struct PanelsPicture<'a> {
    title: &'a str,
    panels: &'a [Panel],
}

impl Picture for PanelsPicture<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(drawing_error)?;
        let (title_size, _, label_size) = font_sizes(root.dim_in_pixel());
        let body = if self.title.is_empty() {
            root.clone()
        } else {
            root.titled(self.title, ("sans-serif", title_size)).map_err(drawing_error)?
        };
        if self.panels.is_empty() {
            let style = ("sans-serif", label_size).into_font().color(&BLACK);
            let (w, h) = body.dim_in_pixel();
            body.draw_text("nothing to plot", &style, (w as i32 / 2 - 60, h as i32 / 2)).map_err(drawing_error)?;
            return Ok(());
        }
        let columns = (self.panels.len() as f64).sqrt().ceil() as usize;
        let rows = self.panels.len().div_ceil(columns);
        let areas = body.split_evenly((rows, columns));
        for (panel, area) in self.panels.iter().zip(&areas) {
            draw_panel(area, panel)?;
        }
        Ok(())
    }
}

/// A panel's points, filtered for its scales: (label, points).
type Lines = Vec<(String, Vec<(f64, f64)>)>;

fn draw_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, panel: &Panel) -> Result<(), String> {
    let keep = |v: f64, log: bool| v.is_finite() && (!log || v > 0.0);
    let lines: Lines = panel
        .series
        .iter()
        .map(|s| {
            let points =
                s.x.iter()
                    .zip(&s.y)
                    .map(|(&x, &y)| (x, y))
                    .filter(|&(x, y)| keep(x, panel.log_x) && keep(y, panel.log_y));
            (s.label.clone(), points.collect())
        })
        .collect();
    let xs = lines.iter().flat_map(|(_, p)| p.iter().map(|q| q.0));
    let x_range = axis_range(xs, panel.log_x, false);
    let ys = lines.iter().flat_map(|(_, p)| p.iter().map(|q| q.1));
    let y_range = axis_range(ys, panel.log_y, true);
    let linear = |r: Range<f64>| RangedCoordf64::from(r);
    let log = |r: Range<f64>| LogCoord::from(r.log_scale());
    match (panel.log_x, panel.log_y) {
        (false, false) => draw_lines(area, panel, &lines, linear(x_range), linear(y_range)),
        (true, false) => draw_lines(area, panel, &lines, log(x_range), linear(y_range)),
        (false, true) => draw_lines(area, panel, &lines, linear(x_range), log(y_range)),
        (true, true) => draw_lines(area, panel, &lines, log(x_range), log(y_range)),
    }
}

/// The range an axis shows for `values`: their span, padded on the vertical axis, widened when it
/// is a single value, and `[0, 1]` (or `[1, 10]` on a log axis) when there are none.
fn axis_range(values: impl Iterator<Item = f64>, log: bool, pad: bool) -> Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo > hi {
        return if log { 1.0..10.0 } else { 0.0..1.0 };
    }
    if log {
        let (lo, hi) = if lo == hi { (lo / 2.0, hi * 2.0) } else { (lo, hi) };
        let factor = if pad { (hi / lo).powf(0.04) } else { 1.0 };
        (lo / factor)..(hi * factor)
    } else if lo == hi {
        let half = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo - half)..(hi + half)
    } else {
        let margin = if pad { (hi - lo) * 0.05 } else { 0.0 };
        (lo - margin)..(hi + margin)
    }
}

fn draw_lines<DB, X, Y>(area: &DrawingArea<DB, Shift>, panel: &Panel, lines: &Lines, x: X, y: Y) -> Result<(), String>
where
    DB: DrawingBackend,
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let (_, caption_size, label_size) = font_sizes(area.dim_in_pixel());
    let mut builder = ChartBuilder::on(area);
    builder.margin(label_size).x_label_area_size(label_size * 3).y_label_area_size(label_size * 5);
    if !panel.title.is_empty() {
        builder.caption(&panel.title, ("sans-serif", caption_size));
    }
    let mut chart = builder.build_cartesian_2d(x, y).map_err(drawing_error)?;
    chart
        .configure_mesh()
        .x_desc(panel.x_label.as_str())
        .y_desc(panel.y_label.as_str())
        .x_label_formatter(&|v| tick(*v))
        .y_label_formatter(&|v| tick(*v))
        .label_style(("sans-serif", label_size))
        .axis_desc_style(("sans-serif", label_size))
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(215, 215, 215))
        .draw()
        .map_err(drawing_error)?;
    let mut labelled = false;
    for (index, (label, points)) in lines.iter().enumerate() {
        let colour = palette(index);
        let line_style = colour.stroke_width(2);
        // A lone point would make an invisible line, so points get dots when there are few.
        let dots = points.len() <= 30;
        let annotation =
            chart.draw_series(LineSeries::new(points.iter().copied(), line_style)).map_err(drawing_error)?;
        if !label.is_empty() {
            labelled = true;
            annotation
                .label(label.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        }
        if dots {
            chart.draw_series(points.iter().map(|&p| Circle::new(p, 3, colour.filled()))).map_err(drawing_error)?;
        }
    }
    if labelled {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(160, 160, 160))
            .label_font(("sans-serif", label_size))
            .draw()
            .map_err(drawing_error)?;
    }
    Ok(())
}

struct ContourPicture<'a> {
    title: &'a str,
    surface: &'a dyn Surface,
    bounds: [(f64, f64); 2],
    paths: &'a [(String, Vec<[f64; 2]>)],
    minima: &'a [[f64; 2]],
}

/// How surface values map to the colour scale `[0, 1]`.
#[derive(Debug, Clone, Copy)]
struct Levels {
    low: f64,
    high: f64,
    /// Logarithmic above `low`, with `offset` keeping the logarithm of the lowest value finite.
    log: bool,
    offset: f64,
}

/// Number of filled bands of the contour map.
const BANDS: usize = 24;

impl Levels {
    /// Levels for the values `z` (finite ones; at least one): logarithmic when the median lies in
    /// the lowest fifth of the span, i.e. when a linear scale would paint most of the view one colour.
    fn fit(z: &[f64]) -> Self {
        let mut finite: Vec<f64> = z.iter().copied().filter(|v| v.is_finite()).collect();
        if finite.is_empty() {
            return Self { low: 0.0, high: 1.0, log: false, offset: 1.0 };
        }
        finite.sort_by(f64::total_cmp);
        let low = finite[0];
        let high = finite[finite.len() - 1];
        let span = high - low;
        if span <= 0.0 {
            return Self { low, high: low + 1.0, log: false, offset: 1.0 };
        }
        let median = finite[finite.len() / 2];
        let log = median - low < 0.2 * span;
        Self { low, high, log, offset: span * 1e-5 }
    }

    /// The position of `z` on the colour scale, in `[0, 1]`.
    fn scale(&self, z: f64) -> f64 {
        let t = if self.log {
            let floor = self.offset.log10();
            ((z - self.low + self.offset).max(self.offset).log10() - floor)
                / ((self.high - self.low + self.offset).log10() - floor)
        } else {
            (z - self.low) / (self.high - self.low)
        };
        t.clamp(0.0, 1.0)
    }

    /// The value at position `t` of the colour scale.
    fn value(&self, t: f64) -> f64 {
        if self.log {
            let floor = self.offset.log10();
            let top = (self.high - self.low + self.offset).log10();
            self.low + 10f64.powf(floor + t * (top - floor)) - self.offset
        } else {
            self.low + t * (self.high - self.low)
        }
    }
}

/// The colour of scale position `t`: viridis, lightened so the paths drawn over it stand out.
fn heat_colour(t: f64) -> RGBColor {
    const ANCHORS: [(f64, f64, f64); 5] =
        [(68.0, 1.0, 84.0), (59.0, 82.0, 139.0), (33.0, 145.0, 140.0), (94.0, 201.0, 98.0), (253.0, 231.0, 37.0)];
    let position = t.clamp(0.0, 1.0) * (ANCHORS.len() - 1) as f64;
    let index = (position.floor() as usize).min(ANCHORS.len() - 2);
    let fraction = position - index as f64;
    let (a, b) = (ANCHORS[index], ANCHORS[index + 1]);
    let mix = |u: f64, v: f64| {
        let c = u + (v - u) * fraction;
        (c + (255.0 - c) * 0.45).round() as u8
    };
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// The colour of the band holding scale position `t`.
fn band_colour(t: f64) -> RGBColor {
    let band = ((t * BANDS as f64) as usize).min(BANDS - 1);
    heat_colour((band as f64 + 0.5) / BANDS as f64)
}

/// A five-pointed star of outer radius `r` pixels around the origin.
fn star(r: i32) -> Vec<(i32, i32)> {
    (0..10)
        .map(|k| {
            let radius = if k % 2 == 0 { r as f64 } else { r as f64 * 0.45 };
            let angle = std::f64::consts::PI * (k as f64 / 5.0 - 0.5);
            ((radius * angle.cos()).round() as i32, (radius * angle.sin()).round() as i32)
        })
        .collect()
}

/// `points` with the first repeated at the end, to outline a polygon.
fn closed(mut points: Vec<(i32, i32)>) -> Vec<(i32, i32)> {
    if let Some(&first) = points.first() {
        points.push(first);
    }
    points
}

/// The segment `a`–`b` clipped to `view` (Liang–Barsky), or `None` when it lies outside.
fn clip_segment(a: (f64, f64), b: (f64, f64), view: [(f64, f64); 2]) -> Option<((f64, f64), (f64, f64))> {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    let checks = [(-dx, a.0 - view[0].0), (dx, view[0].1 - a.0), (-dy, a.1 - view[1].0), (dy, view[1].1 - a.1)];
    for (p, q) in checks {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let r = q / p;
            if p < 0.0 {
                t0 = t0.max(r);
            } else {
                t1 = t1.min(r);
            }
            if t0 > t1 {
                return None;
            }
        }
    }
    Some(((a.0 + t0 * dx, a.1 + t0 * dy), (a.0 + t1 * dx, a.1 + t1 * dy)))
}

/// The visible pieces of a path: runs of consecutive finite points, clipped to `view`.
fn visible_pieces(points: &[[f64; 2]], view: [(f64, f64); 2]) -> Vec<Vec<(f64, f64)>> {
    let mut pieces: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut current: Vec<(f64, f64)> = Vec::new();
    let finite = |p: &[f64; 2]| p[0].is_finite() && p[1].is_finite();
    for pair in points.windows(2) {
        let clipped = if finite(&pair[0]) && finite(&pair[1]) {
            clip_segment((pair[0][0], pair[0][1]), (pair[1][0], pair[1][1]), view)
        } else {
            None
        };
        match clipped {
            Some((a, b)) => {
                if current.last() != Some(&a) {
                    if current.len() > 1 {
                        pieces.push(std::mem::take(&mut current));
                    }
                    current.clear();
                    current.push(a);
                }
                current.push(b);
            }
            None => {
                if current.len() > 1 {
                    pieces.push(std::mem::take(&mut current));
                }
                current.clear();
            }
        }
    }
    if current.len() > 1 {
        pieces.push(current);
    }
    pieces
}

/// `points` without those closer than `spacing` (per axis, in data units) to the last one kept;
/// the last point is always kept.
fn thin(points: &[(f64, f64)], spacing: (f64, f64)) -> Vec<(f64, f64)> {
    let mut kept: Vec<(f64, f64)> = Vec::with_capacity(points.len());
    for (i, &p) in points.iter().enumerate() {
        let far = match kept.last() {
            None => true,
            Some(&q) => ((p.0 - q.0) / spacing.0).abs() + ((p.1 - q.1) / spacing.1).abs() >= 1.0,
        };
        if far || i + 1 == points.len() {
            kept.push(p);
        }
    }
    kept
}

fn inside(p: [f64; 2], view: [(f64, f64); 2]) -> bool {
    p[0] >= view[0].0 && p[0] <= view[0].1 && p[1] >= view[1].0 && p[1] <= view[1].1
}

impl Picture for ContourPicture<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> Result<(), String> {
        root.fill(&WHITE).map_err(drawing_error)?;
        let (title_size, _, label_size) = font_sizes(root.dim_in_pixel());
        let body = if self.title.is_empty() {
            root.clone()
        } else {
            root.titled(self.title, ("sans-serif", title_size)).map_err(drawing_error)?
        };
        let bar_width = label_size * 9;
        let (body_width, _) = body.dim_in_pixel();
        let (main, bar) = body.split_horizontally(body_width.saturating_sub(bar_width));
        let [(x0, x1), (y0, y1)] = self.bounds;

        let mut chart = ChartBuilder::on(&main)
            .margin(label_size)
            .x_label_area_size(label_size * 3)
            .y_label_area_size(label_size * 4)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(drawing_error)?;

        // Evaluate the surface on a grid about two pixels per cell, capped so SVGs stay small.
        let (plot_w, plot_h) = chart.plotting_area().dim_in_pixel();
        let nx = (plot_w as usize / 2).clamp(40, 360);
        let ny = (plot_h as usize / 2).clamp(40, 360);
        let (dx, dy) = ((x1 - x0) / nx as f64, (y1 - y0) / ny as f64);
        let mut z = Vec::with_capacity(nx * ny);
        for j in 0..ny {
            for i in 0..nx {
                z.push(self.surface.value(&[x0 + (i as f64 + 0.5) * dx, y0 + (j as f64 + 0.5) * dy]));
            }
        }
        let levels = Levels::fit(&z);
        let no_value = RGBColor(200, 200, 200);
        let mut cells = Vec::new();
        for j in 0..ny {
            // Runs of cells in one band become one rectangle.
            let row = &z[j * nx..(j + 1) * nx];
            let colour_of = |v: f64| if v.is_finite() { band_colour(levels.scale(v)) } else { no_value };
            let mut start = 0;
            while start < nx {
                let colour = colour_of(row[start]);
                let mut end = start + 1;
                while end < nx && colour_of(row[end]) == colour {
                    end += 1;
                }
                let corner_a = (x0 + start as f64 * dx, y0 + j as f64 * dy);
                let corner_b = (x0 + end as f64 * dx, y0 + (j + 1) as f64 * dy);
                cells.push(Rectangle::new([corner_a, corner_b], colour.filled()));
                start = end;
            }
        }
        chart.draw_series(cells).map_err(drawing_error)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("x")
            .y_desc("y")
            .x_label_formatter(&|v| tick(*v))
            .y_label_formatter(&|v| tick(*v))
            .label_style(("sans-serif", label_size))
            .axis_desc_style(("sans-serif", label_size))
            .draw()
            .map_err(drawing_error)?;

        let view = self.bounds;
        let marker = label_size as i32 / 3 + 2;
        // Minima first, so the end dot of a path that reached one sits on its star.
        let star_fill = RGBColor(255, 215, 0);
        let stars: Vec<_> = self.minima.iter().filter(|m| inside(**m, view)).collect();
        let star_size = marker * 2 + 2;
        chart
            .draw_series(stars.iter().map(|m| {
                let outline = closed(star(star_size));
                EmptyElement::at((m[0], m[1]))
                    + Polygon::new(star(star_size), star_fill.filled())
                    + PathElement::new(outline, BLACK.stroke_width(1))
            }))
            .map_err(drawing_error)?;
        // Sub-pixel steps would draw nothing, so points are thinned to about two pixels apart.
        let spacing = (2.0 * (x1 - x0) / plot_w as f64, 2.0 * (y1 - y0) / plot_h as f64);
        let pieces: Vec<Vec<Vec<(f64, f64)>>> = self
            .paths
            .iter()
            .map(|(_, points)| visible_pieces(points, view).iter().map(|piece| thin(piece, spacing)).collect())
            .collect();
        // Earlier paths are drawn wider, so one that a later path follows still shows beside it.
        let width_of = |index: usize| (2 + 2 * self.paths.len().saturating_sub(index + 1)).min(6) as u32;
        // Every path gets a light halo first, so it stands out on any band of the map (and halos
        // never cover another path's line).
        for (index, path_pieces) in pieces.iter().enumerate() {
            let halo = WHITE.mix(0.7).stroke_width(width_of(index) + 3);
            for piece in path_pieces {
                chart
                    .draw_series(piece.windows(2).map(|w| PathElement::new(vec![w[0], w[1]], halo)))
                    .map_err(drawing_error)?;
            }
        }
        for (index, ((label, points), path_pieces)) in self.paths.iter().zip(&pieces).enumerate() {
            let colour = palette(index);
            let width = width_of(index);
            let mut first = true;
            for piece in path_pieces {
                // Segment by segment: plotters joins wide polylines with mitres, which spike where
                // a path turns back on itself, as optimizers overshooting do.
                let segments = piece.windows(2).map(|w| PathElement::new(vec![w[0], w[1]], colour.stroke_width(width)));
                let series = chart.draw_series(segments).map_err(drawing_error)?;
                if first {
                    series.label(label.as_str()).legend(move |(x, y)| {
                        EmptyElement::at((x, y))
                            + PathElement::new(vec![(0, 0), (20, 0)], colour.stroke_width(2))
                            + Circle::new((20, 0), 4, colour.filled())
                    });
                    first = false;
                }
            }
            if first {
                // Nothing of the path is in view: still name it in the legend.
                chart
                    .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
                    .map_err(drawing_error)?
                    .label(format!("{label} (out of view)"))
                    .legend(move |(x, y)| Circle::new((x + 10, y), 4, colour.filled()));
            }
            let finite: Vec<[f64; 2]> =
                points.iter().copied().filter(|p| p[0].is_finite() && p[1].is_finite()).collect();
            if let Some(&start) = finite.first().filter(|p| inside(**p, view)) {
                chart
                    .draw_series(std::iter::once(Circle::new((start[0], start[1]), marker, BLACK.stroke_width(2))))
                    .map_err(drawing_error)?;
            }
            if let Some(&end) = finite.last().filter(|p| inside(**p, view)) {
                chart
                    .draw_series(std::iter::once(
                        EmptyElement::at((end[0], end[1]))
                            + Circle::new((0, 0), marker + 1, colour.filled())
                            + Circle::new((0, 0), marker + 1, BLACK.stroke_width(1)),
                    ))
                    .map_err(drawing_error)?;
            }
        }
        if !self.paths.is_empty() {
            chart
                .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
                .map_err(drawing_error)?
                .label("start")
                .legend(move |(x, y)| Circle::new((x + 10, y), 4, BLACK.stroke_width(2)));
        }
        if !stars.is_empty() {
            chart
                .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())
                .map_err(drawing_error)?
                .label(if stars.len() == 1 { "global minimum" } else { "global minima" })
                .legend(move |(x, y)| {
                    let outline = closed(star(7));
                    EmptyElement::at((x + 10, y))
                        + Polygon::new(star(7), star_fill.filled())
                        + PathElement::new(outline, BLACK.stroke_width(1))
                });
        }
        if !self.paths.is_empty() || !stars.is_empty() {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(120, 120, 120))
                .label_font(("sans-serif", label_size))
                .draw()
                .map_err(drawing_error)?;
        }
        draw_colour_bar(&bar, levels, label_size)
    }
}

/// The colour bar beside a contour map, labelled with surface values.
fn draw_colour_bar<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    levels: Levels,
    label_size: u32,
) -> Result<(), String> {
    let mut bar = ChartBuilder::on(area)
        .margin_top(label_size)
        .margin_bottom(label_size * 4)
        .margin_right(label_size / 2)
        .y_label_area_size(label_size * 5)
        .build_cartesian_2d(0.0..1.0, 0.0..1.0)
        .map_err(drawing_error)?;
    let bands = (0..BANDS).map(|band| {
        let (lo, hi) = (band as f64 / BANDS as f64, (band + 1) as f64 / BANDS as f64);
        Rectangle::new([(0.0, lo), (1.0, hi)], band_colour((lo + hi) / 2.0).filled())
    });
    bar.draw_series(bands).map_err(drawing_error)?;
    let description = if levels.log { "f (log levels)" } else { "f" };
    bar.configure_mesh()
        .disable_mesh()
        .disable_x_axis()
        .y_labels(8)
        .y_desc(description)
        .y_label_formatter(&|t| tick(levels.value(*t)))
        .label_style(("sans-serif", label_size))
        .axis_desc_style(("sans-serif", label_size))
        .draw()
        .map_err(drawing_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_short() {
        assert_eq!(tick(0.0), "0");
        assert_eq!(tick(0.30000000000000004), "0.3");
        assert_eq!(tick(2.0), "2");
        assert_eq!(tick(1e-4), "1e-4");
        assert_eq!(tick(2500.0), "2500");
        assert_eq!(tick(-1.25), "-1.25");
    }

    #[test]
    fn clipping_keeps_the_inside_part() {
        let view = [(0.0, 1.0), (0.0, 1.0)];
        let (a, b) = clip_segment((-1.0, 0.5), (2.0, 0.5), view).unwrap();
        assert_eq!((a, b), ((0.0, 0.5), (1.0, 0.5)));
        assert!(clip_segment((2.0, 2.0), (3.0, 3.0), view).is_none());
        let pieces = visible_pieces(&[[0.1, 0.1], [0.5, 0.5], [f64::NAN, 0.0], [0.2, 0.2], [0.3, 0.3]], view);
        assert_eq!(pieces.len(), 2);
    }

    #[test]
    fn skewed_values_get_log_levels() {
        let skewed: Vec<f64> = (0..100).map(|i| if i < 90 { i as f64 * 0.01 } else { 1000.0 }).collect();
        let levels = Levels::fit(&skewed);
        assert!(levels.log);
        assert!((levels.value(levels.scale(10.0)) - 10.0).abs() < 1e-9);
        let even: Vec<f64> = (0..100).map(f64::from).collect();
        assert!(!Levels::fit(&even).log);
    }
}
