//! GroupNorm, optionally followed by SiLU, as one pass over `f32` slices (NCHW), and its
//! gradients as one more.
//!
//! Why: burn composes GroupNorm from about ten element-wise ops and SiLU from a few more,
//! each a memory pass of its own (and again in the backward pass); every ResBlock runs two.

use rayon::prelude::*;

/// Shape of one GroupNorm: `batch` samples of `channels` channels of `spatial` values each,
/// channels split into `groups` equal groups.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NormShape {
    pub batch: usize,
    pub channels: usize,
    pub spatial: usize,
    pub groups: usize,
    pub epsilon: f32,
    /// Apply SiLU to the normalised output.
    pub silu: bool,
}

impl NormShape {
    pub fn is_supported(&self) -> bool {
        self.groups > 0
            && self.channels.is_multiple_of(self.groups)
            && self.batch * self.channels * self.spatial > 0
    }

    /// Elements of one (sample, group).
    fn group_len(&self) -> usize {
        self.channels / self.groups * self.spatial
    }

    /// Threads pay off above some ten thousand elements (a pass costs a few ns each).
    fn parallel(&self) -> bool {
        self.batch * self.groups >= 2 && self.batch * self.channels * self.spatial >= 1 << 13
    }
}

fn sigmoid(v: f32) -> f32 {
    1.0 / (1.0 + (-v).exp())
}

/// Mean and reciprocal standard deviation of one group (two passes, as burn computes them).
fn statistics(x: &[f32], epsilon: f32) -> (f32, f32) {
    if let Some((mean, var)) = super::vector::mean_and_variance(x) {
        return (mean, 1.0 / (var + epsilon).sqrt());
    }
    let n = x.len() as f32;
    let mean = x.iter().sum::<f32>() / n;
    let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n;
    (mean, 1.0 / (var + epsilon).sqrt())
}

/// Runs `f(group index within the sample, group slice, output slice)` over every
/// (sample, group), in parallel when large.
fn for_groups(
    s: &NormShape,
    x: &[f32],
    out: &mut [f32],
    f: impl Fn(usize, &[f32], &mut [f32]) + Sync,
) {
    let len = s.group_len();
    let body = |(i, (xg, og)): (usize, (&[f32], &mut [f32]))| f(i % s.groups, xg, og);
    if s.parallel() {
        x.par_chunks(len)
            .zip(out.par_chunks_mut(len))
            .enumerate()
            .for_each(body);
    } else {
        x.chunks(len)
            .zip(out.chunks_mut(len))
            .enumerate()
            .for_each(body);
    }
}

/// `silu?(gamma · (x − mean) / sqrt(var + eps) + beta)`, per (sample, group) statistics.
pub fn forward(s: &NormShape, x: &[f32], gamma: &[f32], beta: &[f32]) -> Vec<f32> {
    assert!(s.is_supported(), "unsupported group norm {s:?}");
    assert_eq!(x.len(), s.batch * s.channels * s.spatial);
    assert!(gamma.len() == s.channels && beta.len() == s.channels);
    let per_group = s.channels / s.groups;
    let mut out = vec![0.0f32; x.len()];
    for_groups(s, x, &mut out, |g, xg, og| {
        let (mean, rstd) = statistics(xg, s.epsilon);
        for (c, (xc, oc)) in xg
            .chunks_exact(s.spatial)
            .zip(og.chunks_exact_mut(s.spatial))
            .enumerate()
        {
            let channel = g * per_group + c;
            let scale = gamma[channel] * rstd;
            let shift = beta[channel] - mean * scale;
            if super::vector::affine(xc, oc, scale, shift, s.silu) {
                continue;
            }
            for (o, v) in oc.iter_mut().zip(xc) {
                let y = v * scale + shift;
                *o = if s.silu { y * sigmoid(y) } else { y };
            }
        }
    });
    out
}

/// Gradients of the input, `gamma` and `beta` from the output gradient `dy`.
pub fn backward(
    s: &NormShape,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert!(s.is_supported(), "unsupported group norm {s:?}");
    assert_eq!(dy.len(), x.len());
    let per_group = s.channels / s.groups;
    let len = s.group_len();
    let mut dx = vec![0.0f32; x.len()];
    // Per (sample, group): the sums of dy0·x̂ and dy0 for each of its channels, reduced over
    // samples afterwards (no two threads write one accumulator).
    let mut sums = vec![0.0f32; s.batch * s.groups * per_group * 2];
    let body = |(i, (dxg, sg)): (usize, (&mut [f32], &mut [f32]))| {
        let group = Group {
            x: &x[i * len..][..len],
            dy: &dy[i * len..][..len],
            dx: dxg,
            sums: sg,
        };
        backward_group(s, i % s.groups, group, gamma, beta);
    };
    if s.parallel() {
        dx.par_chunks_mut(len)
            .zip(sums.par_chunks_mut(per_group * 2))
            .enumerate()
            .for_each(body);
    } else {
        dx.chunks_mut(len)
            .zip(sums.chunks_mut(per_group * 2))
            .enumerate()
            .for_each(body);
    }
    let mut dgamma = vec![0.0f32; s.channels];
    let mut dbeta = vec![0.0f32; s.channels];
    for (i, sg) in sums.chunks_exact(per_group * 2).enumerate() {
        let first = (i % s.groups) * per_group;
        for c in 0..per_group {
            dgamma[first + c] += sg[2 * c];
            dbeta[first + c] += sg[2 * c + 1];
        }
    }
    (dx, dgamma, dbeta)
}

/// One (sample, group) of [`backward`]: its input, its output gradient, where its input
/// gradient goes, and its per-channel sums of dy0·x̂ and dy0 (interleaved).
struct Group<'a> {
    x: &'a [f32],
    dy: &'a [f32],
    dx: &'a mut [f32],
    sums: &'a mut [f32],
}

fn backward_group(s: &NormShape, g: usize, group: Group<'_>, gamma: &[f32], beta: &[f32]) {
    let per_group = s.channels / s.groups;
    let (mean, rstd) = statistics(group.x, s.epsilon);
    // First pass: dy0 (the gradient before SiLU) into dx, and the two group means.
    let (mut sum_dxhat, mut sum_dxhat_xhat) = (0.0f32, 0.0f32);
    for (c, ((xc, dyc), dxc)) in group
        .x
        .chunks_exact(s.spatial)
        .zip(group.dy.chunks_exact(s.spatial))
        .zip(group.dx.chunks_exact_mut(s.spatial))
        .enumerate()
    {
        let channel = g * per_group + c;
        let (gm, bt) = (gamma[channel], beta[channel]);
        let (dgamma, dbeta) =
            super::vector::backward_first(xc, dyc, dxc, mean, rstd, gm, bt, s.silu)
                .unwrap_or_else(|| backward_first(xc, dyc, dxc, mean, rstd, gm, bt, s.silu));
        group.sums[2 * c] = dgamma;
        group.sums[2 * c + 1] = dbeta;
        sum_dxhat += dbeta * gm;
        sum_dxhat_xhat += dgamma * gm;
    }
    let n = group.x.len() as f32;
    let (m1, m2) = (sum_dxhat / n, sum_dxhat_xhat / n);
    // Second pass: dx = rstd · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ · x̂)).
    for (c, (xc, dxc)) in group
        .x
        .chunks_exact(s.spatial)
        .zip(group.dx.chunks_exact_mut(s.spatial))
        .enumerate()
    {
        let gm = gamma[g * per_group + c];
        if super::vector::backward_second(xc, dxc, mean, rstd, gm, [m1, m2]) {
            continue;
        }
        for (v, out) in xc.iter().zip(dxc.iter_mut()) {
            let xhat = (v - mean) * rstd;
            *out = rstd * (*out * gm - m1 - xhat * m2);
        }
    }
}

/// The scalar first pass of one channel (see `super::vector::backward_first`).
#[allow(clippy::too_many_arguments)]
fn backward_first(
    xc: &[f32],
    dyc: &[f32],
    dxc: &mut [f32],
    mean: f32,
    rstd: f32,
    gm: f32,
    bt: f32,
    silu: bool,
) -> (f32, f32) {
    let (mut dbeta, mut dgamma) = (0.0f32, 0.0f32);
    for ((v, d), out) in xc.iter().zip(dyc).zip(dxc.iter_mut()) {
        let xhat = (v - mean) * rstd;
        let d0 = if silu {
            let y = xhat * gm + bt;
            let sg = sigmoid(y);
            d * sg * (1.0 + y * (1.0 - sg))
        } else {
            *d
        };
        dbeta += d0;
        dgamma += d0 * xhat;
        *out = d0;
    }
    (dgamma, dbeta)
}
