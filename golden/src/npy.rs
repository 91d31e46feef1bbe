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

impl<N: Loss> Experiment<N> {
    /// Write global step `step`'s inputs, forward weights, errors and gradients as
    /// `.npy` files into `dir` (raw fixed-point integers, or f32), plus `formats.txt`.
    /// The step itself is not taken: call this before training that step.
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
        let mut tr = Trace::<N>::default();
        for (x, y) in &batch {
            inputs.extend_from_slice(x);
            t.net.sample(&f, x, *y, Some(kind), &mut tr);
            for (i, e) in tr.e.iter().enumerate() {
                errors[i].extend_from_slice(e);
            }
        }
        let bs = batch.len();
        written.push(write_npy::<N>(
            dir,
            "inputs",
            &[bs, c, h, w],
            Vals::V(&inputs),
        )?);
        let labels: Vec<i64> = batch.iter().map(|b| b.1 as i64).collect();
        written.push(write_npy::<N>(dir, "labels", &[bs], Vals::I64(&labels))?);
        let (grads, _) = t.gradients(kind, &batch, self.config.raw.threads);
        for (i, blk) in t.net.blocks.iter().enumerate() {
            let g = &blk.geom;
            let wshape = [g.out_c, g.icg(), g.k, g.k];
            written.push(write_npy::<N>(
                dir,
                &format!("layer{i}_weight"),
                &wshape,
                Vals::V(&f.w[i]),
            )?);
            written.push(write_npy::<N>(
                dir,
                &format!("layer{i}_bias"),
                &[g.out_c],
                Vals::V(&f.b[i]),
            )?);
            written.push(write_npy::<N>(
                dir,
                &format!("layer{i}_error"),
                &[bs, g.out_c, g.out_h, g.out_w],
                Vals::V(&errors[i]),
            )?);
            written.push(write_npy::<N>(
                dir,
                &format!("layer{i}_grad_weight"),
                &wshape,
                Vals::M(&grads[i]),
            )?);
            written.push(write_npy::<N>(
                dir,
                &format!("layer{i}_grad_bias"),
                &[g.out_c],
                Vals::M(&grads[nb + i]),
            )?);
        }
        let note = dir.join("formats.txt");
        let text = format!(
            "step {} ({:?} propagation)\nfixed point: inputs/bias Q8.8 (raw int16, divide by 256), weights Q4.12 (divide by 4096), errors Q3.13 (divide by 8192), gradients Q8.24 (raw int32, divide by 2^24)\nf32 runs store plain float32\nweight layout [out_c, in_c/groups, k, k]; error = dL/dp at each layer's pre-activation, per sample\n",
            t.step, kind
        );
        std::fs::write(&note, text).map_err(|e| file_err(&note, e))?;
        written.push(note);
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
