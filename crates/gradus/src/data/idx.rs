//! IDX files, the format of MNIST and Fashion-MNIST: a big-endian header (two zero bytes, a type
//! code, the number of dimensions, then each dimension as a 32-bit count) followed by the values.
//! Images are `idx3` files of unsigned bytes (`count × height × width`), labels `idx1` files of
//! unsigned bytes; both may be gzip-compressed.
//!
//! [`read_idx`] pairs an image file with its label file into a [`Dataset`] of `height × width`
//! grey levels scaled to `[0, 1]` (the byte divided by 255, as `torchvision`'s `ToTensor`), with
//! the images' shape `[1, height, width]` alongside. The header's sizes are only believed as far
//! as the file backs them: the values are read first (the buffer grows with what is actually
//! there), then checked against the header, so a corrupt header cannot make the reader allocate
//! more than the file holds.

use std::io::Read;
use std::path::Path;

use super::source::open;
use super::{DataError, Dataset};
use crate::nn::Shape;

/// The unsigned-byte type code of the IDX header.
const UNSIGNED_BYTE: u8 = 0x08;

/// An IDX file's dimensions and its values.
struct IdxFile {
    dims: Vec<usize>,
    values: Vec<u8>,
}

fn idx_error(path: &Path, message: impl Into<String>) -> DataError {
    DataError::Idx { path: path.to_path_buf(), message: message.into() }
}

fn read_file(path: &Path, expected_dims: usize, what: &str) -> Result<IdxFile, DataError> {
    let mut reader = open(path)?;
    let io = |source| DataError::Io { path: path.to_path_buf(), line: None, source };
    let mut header = [0u8; 4];
    reader.read_exact(&mut header).map_err(|_| idx_error(path, "shorter than an IDX header (4 bytes)"))?;
    if header[0] != 0 || header[1] != 0 {
        return Err(idx_error(
            path,
            format!("not an IDX file: it starts with {:02x} {:02x}, expected 00 00", header[0], header[1]),
        ));
    }
    if header[2] != UNSIGNED_BYTE {
        return Err(idx_error(path, format!("values of type 0x{:02x}: expected unsigned bytes (0x08)", header[2])));
    }
    if usize::from(header[3]) != expected_dims {
        return Err(idx_error(path, format!("{} dimension(s): expected {expected_dims} for {what}", header[3])));
    }
    let mut dims = Vec::with_capacity(expected_dims);
    for _ in 0..expected_dims {
        let mut count = [0u8; 4];
        reader.read_exact(&mut count).map_err(|_| idx_error(path, "the header ends before its dimensions"))?;
        dims.push(u32::from_be_bytes(count) as usize);
    }
    let expected = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| idx_error(path, format!("dimensions {dims:?} overflow")))?;
    // Read what is there (never more than the header promises, plus one byte to notice extra data).
    let mut values = Vec::new();
    reader.take(expected as u64 + 1).read_to_end(&mut values).map_err(io)?;
    if values.len() != expected {
        let found = if values.len() > expected { "more".to_string() } else { values.len().to_string() };
        return Err(idx_error(
            path,
            format!("the header promises {dims:?} = {expected} values, the file holds {found}"),
        ));
    }
    Ok(IdxFile { dims, values })
}

/// Reads the images of `images` (an `idx3` file) and their labels from `labels` (an `idx1`
/// file) into a data set with one row of `height × width` values in `[0, 1]` per image and the
/// label as its target, and the images' shape `[1, height, width]`.
pub fn read_idx(images: &Path, labels: &Path) -> Result<(Dataset, Shape), DataError> {
    let image_file = read_file(images, 3, "images (count, height, width)")?;
    let label_file = read_file(labels, 1, "labels (count)")?;
    let (count, height, width) = (image_file.dims[0], image_file.dims[1], image_file.dims[2]);
    if label_file.dims[0] != count {
        return Err(idx_error(
            labels,
            format!("{} labels for the {count} images of `{}`", label_file.dims[0], images.display()),
        ));
    }
    if count == 0 || height == 0 || width == 0 {
        return Err(idx_error(images, format!("no pixels: {count} images of {height} × {width}")));
    }
    let cols = height * width;
    let mut features = Vec::new();
    features.try_reserve_exact(image_file.values.len()).map_err(|_| DataError::TooLarge {
        path: images.to_path_buf(),
        rows: count,
        cols,
    })?;
    features.extend(image_file.values.iter().map(|&v| f32::from(v) / 255.0));
    let dataset = Dataset {
        features,
        rows: count,
        cols,
        feature_names: (0..height).flat_map(|r| (0..width).map(move |c| format!("pixel_{r}_{c}"))).collect(),
        target: label_file.values.iter().map(|&v| f32::from(v)).collect(),
        target_name: "label".into(),
        source: images.display().to_string(),
    };
    Ok((dataset, Shape::image(1, height, width)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn header(dims: &[u32]) -> Vec<u8> {
        let mut bytes = vec![0, 0, UNSIGNED_BYTE, dims.len() as u8];
        for d in dims {
            bytes.extend(d.to_be_bytes());
        }
        bytes
    }

    #[test]
    fn reads_images_and_labels() {
        let dir = std::env::temp_dir().join(format!("gradus-idx-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut images = header(&[2, 2, 3]);
        images.extend([0, 51, 102, 153, 204, 255, 1, 2, 3, 4, 5, 6]);
        let mut labels = header(&[2]);
        labels.extend([7, 3]);
        let (data, shape) = read_idx(&write(&dir, "i", &images), &write(&dir, "l", &labels)).unwrap();
        assert_eq!(shape, Shape::image(1, 2, 3));
        assert_eq!((data.rows, data.cols), (2, 6));
        assert_eq!(data.target, [7.0, 3.0]);
        assert_eq!(&data.features[..6], &[0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);

        let cases: Vec<(Vec<u8>, Vec<u8>, &str)> = vec![
            (header(&[2, 2, 3]), labels.clone(), "the file holds 0"),
            ([header(&[2, 2, 3]), vec![0; 13]].concat(), labels.clone(), "holds more"),
            ([header(&[3, 2, 2]), vec![0; 12]].concat(), labels.clone(), "2 labels for the 3 images"),
            (vec![1, 2, 3, 4], labels.clone(), "not an IDX file"),
            (vec![0, 0], labels.clone(), "shorter than"),
            ([header(&[2, 6]), vec![0; 12]].concat(), labels.clone(), "expected 3"),
            // A header promising more than any file: believed only as far as the file backs it.
            ([header(&[u32::MAX, u32::MAX, 1]), vec![0; 12]].concat(), labels.clone(), "the file holds 12"),
            // One whose count does not even fit in 64 bits.
            ([header(&[u32::MAX, u32::MAX, u32::MAX]), vec![0; 12]].concat(), labels.clone(), "overflow"),
            ([header(&[0, 2, 2])].concat(), header(&[0]), "no pixels"),
        ];
        for (images, labels, message) in cases {
            let err = read_idx(&write(&dir, "bad_i", &images), &write(&dir, "bad_l", &labels)).unwrap_err();
            assert!(err.to_string().contains(message), "{err} (expected `{message}`)");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
