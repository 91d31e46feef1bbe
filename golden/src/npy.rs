//! `.npy` dumps of one training step (inputs, forward weights, errors, gradients)
//! for checks outside Rust, e.g. recomputing gradients in float64. The tensors are
//! ndarray arrays written by ndarray-npy.

use std::path::{Path, PathBuf};

use ndarray::{ArrayD, IxDyn};
use ndarray_npy::WriteNpyExt;

use crate::checkpoint::write_atomic;
use crate::cnn::num::Num;
use crate::cnn::train::{Loss, Trace};
use crate::experiment::{file_err, ExpError, Experiment};
use crate::format::{Format, ACT, ERROR, MASTER, WEIGHT};
use serde_json::json;

impl<N: Loss> Experiment<N> {
    /// Write the next step's inputs, forward weights, errors and gradients (batch `b`
    /// of `order`, at the trainer's current weights) as `.npy` files into `dir` (raw
    /// fixed-point integers, or f32), plus `formats.json`: the step, and per file its
    /// shape and scale (real = raw × scale; error files also list each sample's
    /// exponent: real = raw × scale × 2^−exponent[n]). The step itself is not taken.
    pub fn dump_step(
        &self,
        order: &[usize],
        b: usize,
        dir: &Path,
    ) -> Result<Vec<PathBuf>, ExpError> {
        std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
        let batch = self.batch(order, b);
        let t = &self.trainer;
        let f = t.net.forward_copy();
        let kind = t.next_kind();
        let nb = t.net.blocks.len();
        let mut written = Vec::new();
        let [c, h, w] = self.config.raw.input;
        let mut inputs = Vec::new();
        let mut errors: Vec<Vec<N::V>> = vec![Vec::new(); nb];
        let mut exps: Vec<Vec<i32>> = vec![Vec::new(); nb];
        let mut tr = Trace::<N>::default();
        for (x, y) in &batch {
            inputs.extend_from_slice(x);
            t.net.sample(&f, x, *y, Some(kind), &mut tr);
            for (i, e) in tr.e.iter().enumerate() {
                errors[i].extend_from_slice(e);
                exps[i].push(tr.exp[i]);
            }
        }
        let bs = batch.len();
        let (grads, _) = t.gradients(kind, &batch, self.config.raw.threads);
        let labels: Vec<i64> = batch.iter().map(|b| b.1 as i64).collect();
        // (file stem, shape, values, raw format: real = raw × 2^-frac; f32 runs: 1).
        let mut files: Vec<(String, Vec<usize>, Vals<N>, Option<Format>)> = vec![
            (
                "inputs".into(),
                vec![bs, c, h, w],
                Vals::V(&inputs),
                Some(ACT),
            ),
            ("labels".into(), vec![bs], Vals::I64(&labels), None),
        ];
        for (i, blk) in t.net.blocks.iter().enumerate() {
            let g = &blk.geom;
            let wshape = vec![g.out_c, g.icg(), g.k, g.k];
            files.extend([
                (
                    format!("layer{i}_weight"),
                    wshape.clone(),
                    Vals::V(&f.w[i]),
                    Some(WEIGHT),
                ),
                // The biases the forward pass added (wide activations: the masters).
                if t.net.is_wide() {
                    (
                        format!("layer{i}_bias"),
                        vec![g.out_c],
                        Vals::M(&t.net.b[i]),
                        Some(MASTER),
                    )
                } else {
                    (
                        format!("layer{i}_bias"),
                        vec![g.out_c],
                        Vals::V(&f.b[i]),
                        Some(ACT),
                    )
                },
                (
                    format!("layer{i}_error"),
                    vec![bs, g.out_c, g.out_h, g.out_w],
                    Vals::V(&errors[i]),
                    Some(ERROR),
                ),
                (
                    format!("layer{i}_grad_weight"),
                    wshape,
                    Vals::M(&grads[i]),
                    Some(MASTER),
                ),
                (
                    format!("layer{i}_grad_bias"),
                    vec![g.out_c],
                    Vals::M(&grads[nb + i]),
                    Some(MASTER),
                ),
            ]);
        }
        let fixed = std::mem::size_of::<N::V>() == 2;
        let mut meta = serde_json::Map::new();
        for (name, shape, vals, fmt) in files {
            let scale = match fmt {
                Some(f) if fixed => 1.0 / (1u64 << f.frac) as f64,
                _ => 1.0,
            };
            let path = write_npy::<N>(dir, &name, &shape, vals)?;
            let mut entry = json!({"scale": scale, "shape": shape, "format": fmt.filter(|_| fixed).map(|f| f.name)});
            // Error tensors carry one exponent per sample (crate::scale).
            if let Some(i) = name
                .strip_prefix("layer")
                .and_then(|r| r.strip_suffix("_error"))
                .and_then(|i| i.parse::<usize>().ok())
            {
                entry["exponent"] = json!(exps[i]);
            }
            meta.insert(format!("{name}.npy"), entry);
            written.push(path);
        }
        let doc = json!({
            "step": t.step,
            "propagation": format!("{kind:?}"),
            "batch": b,
            "note": "real = raw * scale, and for errors also * 2^-exponent[n] for sample n (one exponent per sample and layer); weights [out_c, in_c/groups, k, k]; errors are dL/dp at each layer's pre-activation, per sample",
            "files": meta,
        });
        let path = dir.join("formats.json");
        let text = serde_json::to_string_pretty(&doc).expect("a JSON value serializes") + "\n";
        write_atomic(&path, text.as_bytes())?;
        written.push(path);
        Ok(written)
    }
}

enum Vals<'a, N: Num> {
    V(&'a [N::V]),
    M(&'a [N::M]),
    I64(&'a [i64]),
}

fn array<T>(shape: &[usize], values: impl Iterator<Item = T>) -> ArrayD<T> {
    ArrayD::from_shape_vec(IxDyn(shape), values.collect())
        .expect("the dump's shape matches its data")
}

/// Write `vals` with `shape` as `dir/name.npy` (through ndarray-npy, atomically).
/// Fixed point: values as int16, master values as int32 (raw bits); f32: float32.
fn write_npy<N: Num>(
    dir: &Path,
    name: &str,
    shape: &[usize],
    vals: Vals<N>,
) -> Result<PathBuf, ExpError> {
    let path = dir.join(format!("{name}.npy"));
    let fixed = std::mem::size_of::<N::V>() == 2;
    let mut buf = Vec::new();
    match vals {
        Vals::V(v) if fixed => {
            array(shape, v.iter().map(|x| N::bits(*x) as i16)).write_npy(&mut buf)
        }
        Vals::V(v) => {
            array(shape, v.iter().map(|x| f32::from_bits(N::bits(*x) as u32))).write_npy(&mut buf)
        }
        Vals::M(v) if fixed => {
            array(shape, v.iter().map(|x| N::master_bits(*x) as i32)).write_npy(&mut buf)
        }
        Vals::M(v) => array(
            shape,
            v.iter().map(|x| f32::from_bits(N::master_bits(*x) as u32)),
        )
        .write_npy(&mut buf),
        Vals::I64(v) => array(shape, v.iter().copied()).write_npy(&mut buf),
    }
    .map_err(|e| file_err(&path, e))?;
    write_atomic(&path, &buf)?;
    Ok(path)
}
