//! Plots (stub: the real module is written separately and replaces this file when merged).
#![allow(dead_code)]

/// One line on a panel.
pub struct Series {
    /// Legend label.
    pub label: String,
    /// X values.
    pub x: Vec<f64>,
    /// Y values.
    pub y: Vec<f64>,
}

/// One chart.
pub struct Panel {
    /// Title.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// Lines.
    pub series: Vec<Series>,
    /// Logarithmic x axis.
    pub log_x: bool,
    /// Logarithmic y axis.
    pub log_y: bool,
}

/// PNG or SVG chosen by extension; written atomically; error is a String message naming the path.
pub fn draw_panels(path: &std::path::Path, title: &str, panels: &[Panel], size: (u32, u32)) -> Result<(), String> {
    let _ = (path, title, panels, size);
    Ok(())
}
