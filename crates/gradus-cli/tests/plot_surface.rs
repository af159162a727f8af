//! The plots: files of the requested format and size, written atomically, and clear errors.

#[path = "../src/plot.rs"]
#[allow(dead_code)]
mod plot;

use std::path::{Path, PathBuf};

use gradus::surfaces::by_name;
use plot::{draw_contour, draw_panels, Panel, Series};

/// A fresh, empty directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gradus-plot-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// Width and height from a PNG's IHDR chunk, after checking the signature.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert!(bytes.len() > 33, "{} is too short for a PNG", path.display());
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{} lacks the PNG signature", path.display());
    assert_eq!(&bytes[12..16], b"IHDR", "the first chunk must be IHDR");
    let word = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!(word(8), 13, "IHDR holds 13 bytes");
    (word(16), word(20))
}

/// A small XML well-formedness check: every tag closes in order, attributes are quoted, there is
/// one root element. Returns the root's name and attributes.
fn parse_xml(text: &str) -> (String, Vec<(String, String)>) {
    let mut stack: Vec<String> = Vec::new();
    let mut root: Option<(String, Vec<(String, String)>)> = None;
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        assert!(!rest[..open].contains('>'), "stray `>` in text");
        rest = &rest[open..];
        if let Some(after) = rest.strip_prefix("<?") {
            let end = after.find("?>").expect("unterminated processing instruction");
            rest = &after[end + 2..];
            continue;
        }
        if let Some(after) = rest.strip_prefix("<!--") {
            let end = after.find("-->").expect("unterminated comment");
            rest = &after[end + 3..];
            continue;
        }
        let end = tag_end(rest).expect("unterminated tag");
        let tag = &rest[1..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack.pop().unwrap_or_else(|| panic!("`</{name}>` closes nothing"));
            assert_eq!(open, name.trim(), "`<{open}>` closed by `</{name}>`");
            continue;
        }
        let self_closing = tag.ends_with('/');
        let body = tag.trim_end_matches('/');
        let name_end = body.find(char::is_whitespace).unwrap_or(body.len());
        let name = body[..name_end].to_string();
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || ":-_.".contains(c)),
            "bad tag `{name}`"
        );
        let attributes = parse_attributes(&body[name_end..]);
        if stack.is_empty() {
            assert!(root.is_none(), "a second root element `{name}`");
            root = Some((name.clone(), attributes));
        }
        if !self_closing {
            stack.push(name);
        }
    }
    assert!(stack.is_empty(), "unclosed elements: {stack:?}");
    assert!(rest.trim().is_empty(), "text after the root element");
    root.expect("no root element")
}

/// Where the tag starting at `text[0] == '<'` ends, skipping `>` inside quoted values.
fn tag_end(text: &str) -> Option<usize> {
    let mut quote = None;
    for (i, c) in text.char_indices().skip(1) {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => return Some(i),
            (None, '<') => panic!("`<` inside a tag"),
            _ => {}
        }
    }
    None
}

fn parse_attributes(mut text: &str) -> Vec<(String, String)> {
    let mut attributes = Vec::new();
    loop {
        text = text.trim_start();
        if text.is_empty() {
            return attributes;
        }
        let eq = text.find('=').unwrap_or_else(|| panic!("attribute without a value in `{text}`"));
        let name = text[..eq].trim().to_string();
        let value_text = text[eq + 1..].trim_start();
        let quote = value_text.chars().next().expect("missing attribute value");
        assert!(quote == '"' || quote == '\'', "unquoted value of `{name}`");
        let close = value_text[1..].find(quote).expect("unterminated attribute value") + 1;
        attributes.push((name, value_text[1..close].to_string()));
        text = &value_text[close + 1..];
    }
}

fn svg_size(path: &Path) -> (u32, u32) {
    let text = std::fs::read_to_string(path).unwrap();
    let (root, attributes) = parse_xml(&text);
    assert_eq!(root, "svg");
    let get = |key: &str| -> u32 {
        attributes.iter().find(|(k, _)| k == key).unwrap_or_else(|| panic!("no {key} attribute")).1.parse().unwrap()
    };
    (get("width"), get("height"))
}

fn panels() -> Vec<Panel> {
    let steps: Vec<f64> = (1..=50).map(f64::from).collect();
    vec![
        Panel {
            title: "loss".into(),
            x_label: "epoch".into(),
            y_label: "loss".into(),
            series: vec![
                Series { label: "train".into(), x: steps.clone(), y: steps.iter().map(|s| 2.0 / s).collect() },
                // Non-finite and (on the log axis) non-positive values are dropped.
                Series {
                    label: "validation".into(),
                    x: steps.clone(),
                    y: steps
                        .iter()
                        .map(|s| if (*s as u32).is_multiple_of(7) { f64::NAN } else { 2.5 / s - 0.02 })
                        .collect(),
                },
            ],
            log_x: false,
            log_y: true,
        },
        Panel {
            title: "range test".into(),
            x_label: "learning rate".into(),
            y_label: "loss".into(),
            series: vec![
                Series { label: "empty".into(), x: vec![], y: vec![] },
                Series { label: "one point".into(), x: vec![1e-3], y: vec![0.5] },
                Series { label: String::new(), x: vec![1e-5, 1e-1, 10.0], y: vec![1.0, 0.2, f64::INFINITY] },
            ],
            log_x: true,
            log_y: false,
        },
        Panel { title: "nothing".into(), ..Default::default() },
    ]
}

#[test]
fn panels_png_has_the_requested_size() {
    let dir = scratch("panels-png");
    let path = dir.join("curves.png");
    draw_panels(&path, "Training", &panels(), (640, 480)).unwrap();
    assert_eq!(png_size(&path), (640, 480));
    assert_eq!(listing(&dir), ["curves.png"], "no temporary file may be left");
    // Upper-case extensions are accepted too.
    let upper = dir.join("CURVES.PNG");
    draw_panels(&upper, "", &panels()[..1], (300, 200)).unwrap();
    assert_eq!(png_size(&upper), (300, 200));
}

#[test]
fn panels_svg_is_xml_with_the_requested_size() {
    let dir = scratch("panels-svg");
    let path = dir.join("curves.svg");
    draw_panels(&path, "Training <a & b>", &panels(), (800, 600)).unwrap();
    assert_eq!(svg_size(&path), (800, 600));
    assert_eq!(listing(&dir), ["curves.svg"]);
}

#[test]
fn no_panels_still_makes_a_picture() {
    let dir = scratch("no-panels");
    let path = dir.join("empty.png");
    draw_panels(&path, "nothing", &[], (200, 150)).unwrap();
    assert_eq!(png_size(&path), (200, 150));
}

fn paths() -> Vec<(String, Vec<[f64; 2]>)> {
    let descent: Vec<[f64; 2]> = (0..100).map(|i| [-1.2 + i as f64 * 0.02, 1.0 - i as f64 * 0.005]).collect();
    vec![
        ("sgd".into(), descent),
        // Leaves the view, comes back through a NaN, then diverges.
        (
            "diverging".into(),
            vec![[0.0, 0.0], [5.0, 5.0], [f64::NAN, 1.0], [0.5, 0.5], [1e30, -1e30], [f64::INFINITY, 0.0]],
        ),
        ("empty".into(), vec![]),
        ("out of view".into(), vec![[50.0, 50.0], [60.0, 60.0]]),
    ]
}

#[test]
fn contour_png_has_the_requested_size() {
    let dir = scratch("contour-png");
    let path = dir.join("rosenbrock.png");
    let surface = by_name("rosenbrock", 2).unwrap();
    draw_contour(&path, "rosenbrock", surface.as_ref(), surface.plot_bounds(), &paths(), &[[1.0, 1.0]], (900, 700))
        .unwrap();
    assert_eq!(png_size(&path), (900, 700));
    assert_eq!(listing(&dir), ["rosenbrock.png"]);
}

#[test]
fn contour_svg_is_xml_with_the_requested_size() {
    let dir = scratch("contour-svg");
    let path = dir.join("himmelblau.svg");
    let surface = by_name("himmelblau", 2).unwrap();
    let minima: Vec<[f64; 2]> = surface.minima().iter().map(|m| [m[0], m[1]]).collect();
    draw_contour(&path, "himmelblau", surface.as_ref(), surface.plot_bounds(), &paths(), &minima, (700, 500)).unwrap();
    assert_eq!(svg_size(&path), (700, 500));
    // A surface unbounded below, with no minima and no paths.
    let saddle = by_name("saddle", 2).unwrap();
    let path = dir.join("saddle.svg");
    draw_contour(&path, "", saddle.as_ref(), saddle.plot_bounds(), &[], &[], (400, 400)).unwrap();
    assert_eq!(svg_size(&path), (400, 400));
}

#[test]
fn a_bad_extension_is_refused_and_writes_nothing() {
    let dir = scratch("extension");
    let surface = by_name("sphere", 2).unwrap();
    for name in ["plot.jpg", "plot", "plot.png.txt"] {
        let path = dir.join(name);
        let error = draw_panels(&path, "t", &panels(), (400, 300)).unwrap_err();
        assert!(error.contains(name) && error.contains(".png or .svg"), "unhelpful error: {error}");
        let error =
            draw_contour(&path, "t", surface.as_ref(), surface.plot_bounds(), &[], &[], (400, 300)).unwrap_err();
        assert!(error.contains(".png or .svg"), "unhelpful error: {error}");
    }
    assert!(listing(&dir).is_empty(), "left behind: {:?}", listing(&dir));
}

#[test]
fn an_unwritable_path_is_an_error_and_leaves_no_file() {
    let dir = scratch("unwritable");
    // The parent directory does not exist.
    let missing = dir.join("no-such-dir").join("plot.png");
    let error = draw_panels(&missing, "t", &panels(), (400, 300)).unwrap_err();
    assert!(error.contains("plot.png") && error.contains("expected"), "unhelpful error: {error}");
    let missing_svg = dir.join("no-such-dir").join("plot.svg");
    assert!(draw_panels(&missing_svg, "t", &panels(), (400, 300)).is_err());
    assert!(listing(&dir).is_empty(), "left behind: {:?}", listing(&dir));

    // The target is a directory: rendering succeeds, the rename fails, the temporary file goes.
    std::fs::create_dir(dir.join("taken.png")).unwrap();
    let surface = by_name("booth", 2).unwrap();
    let error =
        draw_contour(&dir.join("taken.png"), "t", surface.as_ref(), surface.plot_bounds(), &[], &[], (300, 300))
            .unwrap_err();
    assert!(error.contains("taken.png"), "unhelpful error: {error}");
    assert_eq!(listing(&dir), ["taken.png"], "a temporary file was left behind");
    assert!(dir.join("taken.png").is_dir());
}

#[test]
fn a_failed_plot_keeps_the_previous_file() {
    let dir = scratch("keep");
    let path = dir.join("plot.png");
    draw_panels(&path, "first", &panels(), (320, 240)).unwrap();
    let before = std::fs::read(&path).unwrap();
    assert!(draw_panels(&path, "second", &panels(), (10, 10)).is_err(), "a 10×10 picture must be refused");
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(listing(&dir), ["plot.png"]);
}

#[test]
fn contour_arguments_are_checked() {
    let dir = scratch("contour-args");
    let path = dir.join("c.png");
    let sphere3 = by_name("sphere", 3).unwrap();
    let error = draw_contour(&path, "t", sphere3.as_ref(), [(-1.0, 1.0); 2], &[], &[], (300, 300)).unwrap_err();
    assert!(error.contains("2-D"), "{error}");
    let sphere = by_name("sphere", 2).unwrap();
    for bounds in [[(1.0, -1.0), (-1.0, 1.0)], [(-1.0, 1.0), (0.0, f64::NAN)]] {
        assert!(draw_contour(&path, "t", sphere.as_ref(), bounds, &[], &[], (300, 300)).is_err());
    }
    assert!(listing(&dir).is_empty());
}
