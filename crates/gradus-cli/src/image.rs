//! Reading PNG and JPEG files as a model's input rows (`predict --image`).

use std::path::Path;

use image::imageops::FilterType;

use crate::error::CliError;

/// The image at `path` as `channels × height × width` values in `[0, 1]` (PyTorch's layout):
/// converted to grey (1 channel, ITU-R BT.601 luma as the `image` crate computes it) or RGB (3
/// channels), resized to the model's size with a Lanczos filter (the aspect ratio is not kept:
/// the whole picture is used), and inverted when `invert` (1 − v).
pub fn read_image(
    path: &Path,
    channels: usize,
    height: usize,
    width: usize,
    invert: bool,
) -> Result<Vec<f32>, CliError> {
    let shown = path.display();
    let picture = image::ImageReader::open(path)
        .map_err(|e| CliError::usage(format!("--image `{shown}`: cannot open the file: {e}")))?
        .with_guessed_format()
        .map_err(|e| CliError::usage(format!("--image `{shown}`: cannot read the file: {e}")))?
        .decode()
        .map_err(|e| CliError::usage(format!("--image `{shown}`: not a PNG or JPEG image this tool can read: {e}")))?;
    let (w, h) = (u32::try_from(width), u32::try_from(height));
    let (Ok(w), Ok(h)) = (w, h) else {
        return Err(CliError::usage(format!("--image: the model's images ({height} × {width}) are too large")));
    };
    let resized = picture.resize_exact(w, h, FilterType::Lanczos3);
    let flip = |v: u8| {
        let v = f32::from(v) / 255.0;
        if invert {
            1.0 - v
        } else {
            v
        }
    };
    let values = match channels {
        1 => resized.to_luma8().pixels().map(|p| flip(p.0[0])).collect(),
        3 => {
            let rgb = resized.to_rgb8();
            let plane = height * width;
            let mut values = vec![0.0f32; 3 * plane];
            for (i, p) in rgb.pixels().enumerate() {
                for c in 0..3 {
                    values[c * plane + i] = flip(p.0[c]);
                }
            }
            values
        }
        other => {
            return Err(CliError::usage(format!(
                "--image: the model takes images of {other} channels; pictures have 1 (grey) or 3 (RGB)"
            )))
        }
    };
    Ok(values)
}
