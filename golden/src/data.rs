//! Image datasets: the IDX loader (MNIST layout, gzip or raw) and the CSV loader of
//! the 8×8 digits. Every malformed input is a [`DataError`] naming the file and the
//! reason; nothing here panics on bad data.

use std::io::Read;
use std::path::{Path, PathBuf};

use ndarray::{s, Array1, Array3, ArrayView2, Axis};
use thiserror::Error;

/// Errors of the dataset loaders.
#[derive(Debug, Error)]
pub enum DataError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file's content is malformed.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn bad(path: &Path, reason: impl Into<String>) -> DataError {
    DataError::Format {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// A labelled image set, pixels as stored (0..=`max_pixel`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dataset {
    /// Largest pixel value of the encoding (255 for MNIST, 16 for the digits).
    pub max_pixel: u8,
    /// Number of classes; every label is below it.
    pub classes: usize,
    /// The images, (n, height, width).
    pub images: Array3<u8>,
    /// One label per image.
    pub labels: Array1<u8>,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there is no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Image height.
    pub fn height(&self) -> usize {
        self.images.dim().1
    }

    /// Image width.
    pub fn width(&self) -> usize {
        self.images.dim().2
    }

    /// Image `i`, (height, width).
    pub fn image(&self, i: usize) -> ArrayView2<'_, u8> {
        self.images.index_axis(Axis(0), i)
    }

    /// The images `ids`, in that order, as a new dataset (e.g. a train/test split).
    pub fn select(&self, ids: &[usize]) -> Dataset {
        Dataset {
            images: self.images.select(Axis(0), ids),
            labels: self.labels.select(Axis(0), ids),
            ..*self
        }
    }

    /// The first `n` images as a new dataset.
    pub fn first(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        Dataset {
            images: self.images.slice(s![..n, .., ..]).to_owned(),
            labels: self.labels.slice(s![..n]).to_owned(),
            ..*self
        }
    }

    pub(crate) fn new(
        h: usize,
        w: usize,
        max_pixel: u8,
        classes: usize,
        pixels: Vec<u8>,
        labels: Vec<u8>,
    ) -> Dataset {
        let n = labels.len();
        Dataset {
            max_pixel,
            classes,
            images: Array3::from_shape_vec((n, h, w), pixels)
                .expect("n·h·w pixels, checked by the loader"),
            labels: Array1::from(labels),
        }
    }
}

/// Read a whole file, un-gzipping it when it starts with the gzip magic.
/// The file (or its gzip stream) must fit in the memory budget ([`crate::mem`]): a
/// file larger than it is refused before it is read, and a gzip stream is cut at it
/// (a small file that unpacks to gigabytes never gets the chance).
pub fn read_maybe_gz(path: &Path) -> Result<Vec<u8>, DataError> {
    let io = |source| DataError::Io {
        path: path.to_path_buf(),
        source,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    crate::mem::check("the file", len).map_err(|e| bad(path, e.to_string()))?;
    let raw = std::fs::read(path).map_err(io)?;
    unpack_maybe_gz(path, raw, crate::mem::available())
}

/// `raw` (the bytes of `path`), un-gzipped when it starts with the gzip magic; the
/// unpacked stream is cut at `limit` bytes less the file's own (None: no limit).
pub fn unpack_maybe_gz(
    path: &Path,
    raw: Vec<u8>,
    limit: Option<u64>,
) -> Result<Vec<u8>, DataError> {
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        let cap = limit.unwrap_or(u64::MAX).saturating_sub(raw.len() as u64);
        flate2::read::GzDecoder::new(&raw[..])
            .take(cap.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| bad(path, format!("corrupt gzip data: {e}")))?;
        if out.len() as u64 > cap {
            return Err(bad(
                path,
                format!(
                    "unpacks to more than {cap} bytes: out of range, valid is at most the memory budget of {} bytes less the file's {} (HDFA_MEM_LIMIT or MemAvailable)",
                    limit.unwrap_or(u64::MAX),
                    raw.len()
                ),
            ));
        }
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Load an IDX image file (magic 0x00000803) and its label file (0x00000801).
pub fn load_idx(images: &Path, labels: &Path, classes: usize) -> Result<Dataset, DataError> {
    let img = read_maybe_gz(images)?;
    let lab = read_maybe_gz(labels)?;
    parse_idx(images, &img, labels, &lab, classes)
}

/// The IDX image and label bytes (`img` from `images`, `lab` from `labels`, both
/// unpacked) as a data set.
pub fn parse_idx(
    images: &Path,
    img: &[u8],
    labels: &Path,
    lab: &[u8],
    classes: usize,
) -> Result<Dataset, DataError> {
    if img.len() < 16 {
        return Err(bad(
            images,
            format!("truncated IDX header: {} bytes, need 16", img.len()),
        ));
    }
    if be32(img, 0) != 0x0803 {
        return Err(bad(
            images,
            format!(
                "not an IDX image file: magic 0x{:08x}, expected 0x00000803",
                be32(img, 0)
            ),
        ));
    }
    let (n, h, w) = (
        be32(img, 4) as usize,
        be32(img, 8) as usize,
        be32(img, 12) as usize,
    );
    if h == 0 || w == 0 {
        return Err(bad(images, format!("image size {h}x{w} is empty")));
    }
    // Found by fuzzing: zero images of 4e9 x 2e9 pixels pass the length check but
    // not ndarray's shape check.
    const MAX_SIDE: usize = 1 << 16;
    if h > MAX_SIDE || w > MAX_SIDE {
        return Err(bad(
            images,
            format!("image size {h}x{w} is out of range: valid range is 1..={MAX_SIDE} per side"),
        ));
    }
    let want = n
        .checked_mul(
            h.checked_mul(w)
                .ok_or_else(|| bad(images, "header sizes overflow"))?,
        )
        .and_then(|p| p.checked_add(16))
        .ok_or_else(|| bad(images, "header sizes overflow"))?;
    if img.len() != want {
        return Err(bad(
            images,
            format!(
                "{} bytes for {n} images of {h}x{w}: expected {want} (truncated or trailing data)",
                img.len()
            ),
        ));
    }
    if lab.len() < 8 {
        return Err(bad(
            labels,
            format!("truncated IDX header: {} bytes, need 8", lab.len()),
        ));
    }
    if be32(lab, 0) != 0x0801 {
        return Err(bad(
            labels,
            format!(
                "not an IDX label file: magic 0x{:08x}, expected 0x00000801",
                be32(lab, 0)
            ),
        ));
    }
    let nl = be32(lab, 4) as usize;
    if nl != n {
        return Err(bad(labels, format!("{nl} labels for {n} images")));
    }
    if lab.len() != 8 + n {
        return Err(bad(
            labels,
            format!(
                "{} bytes for {n} labels: expected {} (truncated or trailing data)",
                lab.len(),
                8 + n
            ),
        ));
    }
    let labels_v = lab[8..].to_vec();
    check_labels(labels, &labels_v, classes)?;
    let pixels = img[16..].to_vec();
    let max_pixel = if pixels.iter().all(|&p| p <= 16) {
        16
    } else {
        255
    };
    Ok(Dataset::new(h, w, max_pixel, classes, pixels, labels_v))
}

fn check_labels(path: &Path, labels: &[u8], classes: usize) -> Result<(), DataError> {
    if let Some((i, &l)) = labels
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= classes)
    {
        return Err(bad(
            path,
            format!("label {l} of image {i} is out of range: valid range is 0..{classes}"),
        ));
    }
    Ok(())
}

/// Load the digits CSV: per line `side*side` pixel counts in 0..=16, then the label.
pub fn load_digits_csv(path: &Path, side: usize, classes: usize) -> Result<Dataset, DataError> {
    parse_digits_csv(path, read_maybe_gz(path)?, side, classes)
}

/// The digits CSV's bytes (`raw`, from `path`, unpacked) as a data set.
pub fn parse_digits_csv(
    path: &Path,
    raw: Vec<u8>,
    side: usize,
    classes: usize,
) -> Result<Dataset, DataError> {
    let text = String::from_utf8(raw).map_err(|_| bad(path, "not UTF-8 text"))?;
    let n_pix = side * side;
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (ln, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != n_pix + 1 {
            return Err(bad(
                path,
                format!(
                    "line {}: {} fields, expected {} ({} pixels + label)",
                    ln + 1,
                    fields.len(),
                    n_pix + 1,
                    n_pix
                ),
            ));
        }
        for (k, f) in fields.iter().enumerate() {
            let v: u32 = f.parse().map_err(|_| {
                bad(
                    path,
                    format!(
                        "line {}, field {}: `{f}` is not a non-negative integer",
                        ln + 1,
                        k + 1
                    ),
                )
            })?;
            if k < n_pix {
                if v > 16 {
                    return Err(bad(
                        path,
                        format!(
                            "line {}, pixel {}: {v} is out of range: valid range is 0..=16",
                            ln + 1,
                            k + 1
                        ),
                    ));
                }
                pixels.push(v as u8);
            } else {
                if v as usize >= classes {
                    return Err(bad(
                        path,
                        format!(
                            "line {}: label {v} is out of range: valid range is 0..{classes}",
                            ln + 1
                        ),
                    ));
                }
                labels.push(v as u8);
            }
        }
    }
    if labels.is_empty() {
        return Err(bad(path, "no images"));
    }
    Ok(Dataset::new(side, side, 16, classes, pixels, labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(p: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
    }

    fn tmp(name: &str, bytes: &[u8]) -> PathBuf {
        let dir = repo("target/hdfa-test/data");
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn digits_idx_and_csv_hold_the_same_1797_images() {
        let idx = load_idx(
            &repo("data/digits-8x8/digits-images-idx3-ubyte.gz"),
            &repo("data/digits-8x8/digits-labels-idx1-ubyte.gz"),
            10,
        )
        .unwrap();
        let csv = load_digits_csv(&repo("data/digits-8x8/digits.csv.gz"), 8, 10).unwrap();
        assert_eq!(idx.len(), 1797);
        assert_eq!(idx.images.dim(), (1797, 8, 8));
        assert_eq!(idx.max_pixel, 16);
        assert_eq!(idx, csv);
        let mut counts = [0usize; 10];
        idx.labels.iter().for_each(|&l| counts[l as usize] += 1);
        assert!(
            counts.iter().all(|&c| (174..=183).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn malformed_idx_files_get_named_errors() {
        let mut img = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2];
        img.extend([1u8; 8]);
        let lab_ok = [0, 0, 8, 1, 0, 0, 0, 2, 3, 9];
        let i = tmp("ok-img", &img);
        let l = tmp("ok-lab", &lab_ok);
        assert_eq!(load_idx(&i, &l, 10).unwrap().len(), 2);
        let e = load_idx(&tmp("trunc-img", &img[..20]), &l, 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("trunc-img") && e.contains("truncated"), "{e}");
        let e = load_idx(&tmp("short-hdr", &img[..10]), &l, 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("truncated IDX header"), "{e}");
        let mut wrong = img.clone();
        wrong[3] = 1;
        assert!(load_idx(&tmp("magic", &wrong), &l, 10)
            .unwrap_err()
            .to_string()
            .contains("magic"));
        let e = load_idx(&i, &tmp("lab-range", &[0, 0, 8, 1, 0, 0, 0, 2, 3, 10]), 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("label 10 of image 1 is out of range"), "{e}");
        assert!(load_idx(
            &i,
            &tmp("lab-count", &[0, 0, 8, 1, 0, 0, 0, 3, 3, 1, 1]),
            10
        )
        .unwrap_err()
        .to_string()
        .contains("3 labels for 2 images"));
        let e = load_idx(&tmp("gz", &[0x1f, 0x8b, 8, 0, 1, 2, 3]), &l, 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("corrupt gzip"), "{e}");
        assert!(matches!(
            load_idx(&repo("no/such/file"), &l, 10),
            Err(DataError::Io { .. })
        ));
    }

    #[test]
    fn malformed_csv_files_get_named_errors() {
        let line = |label: u32| format!("{}{label}\n", "1,".repeat(64));
        assert_eq!(
            load_digits_csv(&tmp("ok.csv", line(3).as_bytes()), 8, 10)
                .unwrap()
                .len(),
            1
        );
        let e = load_digits_csv(&tmp("label.csv", line(12).as_bytes()), 8, 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1: label 12 is out of range"), "{e}");
        let e = load_digits_csv(&tmp("short.csv", b"1,2,3\n"), 8, 10)
            .unwrap_err()
            .to_string();
        assert!(e.contains("3 fields, expected 65"), "{e}");
        let e = load_digits_csv(
            &tmp(
                "px.csv",
                format!("17,{}", line(1)).replacen("1,", "", 1).as_bytes(),
            ),
            8,
            10,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("17 is out of range"), "{e}");
        let e = load_digits_csv(
            &tmp("text.csv", format!("x,{}", &line(1)[2..]).as_bytes()),
            8,
            10,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("`x` is not"), "{e}");
        assert!(load_digits_csv(&tmp("empty.csv", b""), 8, 10)
            .unwrap_err()
            .to_string()
            .contains("no images"));
    }
}
