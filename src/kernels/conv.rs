//! 2-D convolution on plain `f32` slices (NCHW input, OIHW weight, groups 1, dilation 1), as
//! im2col plus one gemm per sample, and its two gradients.
//!
//! Why this shape: the output of `W [c_out, K] · col [K, H'W']` is already one NCHW sample, so
//! no layout changes are needed either side of the gemm; the gradient of the input at stride 1
//! is itself a convolution (of the output gradient with the flipped, transposed kernel), so it
//! runs through the same large gemm instead of a scatter; the weight gradient is one gemm per
//! sample with `k = H'W'`, accumulated in place. Samples run in parallel (each with its own
//! scratch) when there are at least two; a single sample lets gemm split the work instead.

use std::cell::RefCell;

use gemm::Parallelism;
use rayon::prelude::*;

/// Shape of one convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    pub batch: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: [usize; 2],
    pub pad: [usize; 2],
}

impl ConvShape {
    /// Whether the kernels here can run it: a window that fits the padded input, a non-zero
    /// stride and padding smaller than the window (as every layer of ours has).
    pub fn is_supported(&self) -> bool {
        self.stride[0] > 0
            && self.stride[1] > 0
            && self.kh > 0
            && self.kw > 0
            && self.pad[0] < self.kh
            && self.pad[1] < self.kw
            && self.h + 2 * self.pad[0] >= self.kh
            && self.w + 2 * self.pad[1] >= self.kw
            && self.batch * self.c_in * self.c_out * self.h * self.w > 0
    }

    pub fn out_h(&self) -> usize {
        (self.h + 2 * self.pad[0] - self.kh) / self.stride[0] + 1
    }

    pub fn out_w(&self) -> usize {
        (self.w + 2 * self.pad[1] - self.kw) / self.stride[1] + 1
    }

    /// Rows of the im2col matrix: one per input channel and window position.
    fn k(&self) -> usize {
        self.c_in * self.kh * self.kw
    }

    /// Output pixels per channel.
    fn n(&self) -> usize {
        self.out_h() * self.out_w()
    }

    fn in_len(&self) -> usize {
        self.c_in * self.h * self.w
    }

    fn out_len(&self) -> usize {
        self.c_out * self.n()
    }

    /// A 1×1 convolution at stride 1 without padding: its im2col matrix is the input itself.
    fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == [1, 1] && self.pad == [0, 0]
    }

    /// Samples run on separate threads when there are enough of them to share out.
    fn per_sample_threads(&self) -> bool {
        self.batch >= 2 && rayon::current_num_threads() > 1
    }

    /// gemm's own threading, for when the samples do not run in parallel.
    fn gemm_parallelism(&self, flops: usize) -> Parallelism {
        if self.per_sample_threads() || flops < 1 << 21 {
            Parallelism::None
        } else {
            Parallelism::Rayon(0)
        }
    }
}

thread_local! {
    // One im2col buffer per thread, reused: a fresh multi-megabyte buffer per call costs page
    // faults comparable to the gemm itself at batch 1.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| {
        let mut buf = cell.borrow_mut();
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        f(&mut buf[..len])
    })
}

/// Fills `col` (`[K, H'W']`, row-major) with the windows of one sample `x` (`[c_in, h, w]`).
fn im2col(s: &ConvShape, x: &[f32], col: &mut [f32]) {
    let (oh, ow, n) = (s.out_h(), s.out_w(), s.n());
    let [sh, sw] = s.stride;
    let [ph, pw] = s.pad;
    for (row_index, row) in col.chunks_exact_mut(n).enumerate() {
        let kx = row_index % s.kw;
        let ky = (row_index / s.kw) % s.kh;
        let ci = row_index / (s.kw * s.kh);
        let plane = &x[ci * s.h * s.w..][..s.h * s.w];
        // Output columns whose input column lies inside the image (stride 1 only).
        let lo = pw.saturating_sub(kx).min(ow);
        let hi = (s.w + pw).saturating_sub(kx).clamp(lo, ow);
        for (oy, dst) in row.chunks_exact_mut(ow).enumerate().take(oh) {
            let iy = (oy * sh + ky) as isize - ph as isize;
            if iy < 0 || iy >= s.h as isize {
                dst.fill(0.0);
                continue;
            }
            let src = &plane[iy as usize * s.w..][..s.w];
            if sw == 1 {
                dst[..lo].fill(0.0);
                dst[lo..hi].copy_from_slice(&src[lo + kx - pw..hi + kx - pw]);
                dst[hi..].fill(0.0);
            } else {
                for (ox, d) in dst.iter_mut().enumerate() {
                    let ix = (ox * sw + kx) as isize - pw as isize;
                    *d = if ix >= 0 && ix < s.w as isize {
                        src[ix as usize]
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}

/// Adds the windows in `col` back onto one sample's input gradient `dx` (the adjoint of
/// [`im2col`]).
fn col2im_add(s: &ConvShape, col: &[f32], dx: &mut [f32]) {
    let (ow, n) = (s.out_w(), s.n());
    let [sh, sw] = s.stride;
    let [ph, pw] = s.pad;
    for (row_index, row) in col.chunks_exact(n).enumerate() {
        let kx = row_index % s.kw;
        let ky = (row_index / s.kw) % s.kh;
        let ci = row_index / (s.kw * s.kh);
        let plane = &mut dx[ci * s.h * s.w..][..s.h * s.w];
        for (oy, src) in row.chunks_exact(ow).enumerate() {
            let iy = (oy * sh + ky) as isize - ph as isize;
            if iy < 0 || iy >= s.h as isize {
                continue;
            }
            let dst = &mut plane[iy as usize * s.w..][..s.w];
            for (ox, v) in src.iter().enumerate() {
                let ix = (ox * sw + kx) as isize - pw as isize;
                if ix >= 0 && ix < s.w as isize {
                    dst[ix as usize] += v;
                }
            }
        }
    }
}

/// `dst [m, n] (row stride dst_rs) = alpha·dst + lhs · rhs` for row- or column-major operands,
/// given as (pointer, column stride, row stride).
#[allow(clippy::too_many_arguments)]
fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    lhs: (&[f32], isize, isize),
    rhs: (&[f32], isize, isize),
    parallelism: Parallelism,
) {
    assert!(dst.len() >= m * n, "gemm destination too small");
    let reach = |(_, cs, rs): (&[f32], isize, isize), rows: usize, cols: usize| {
        (rows.saturating_sub(1) as isize * rs + cols.saturating_sub(1) as isize * cs) as usize
    };
    assert!(reach(lhs, m, k) < lhs.0.len() && reach(rhs, k, n) < rhs.0.len());
    // SAFETY: the asserts above keep every element gemm reads or writes inside the slices;
    // `dst` is borrowed mutably, so it aliases neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.0.as_ptr(),
            lhs.1,
            lhs.2,
            rhs.0.as_ptr(),
            rhs.1,
            rhs.2,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Runs `f(sample index, output chunk)` over the samples: in parallel when
/// [`ConvShape::per_sample_threads`], in order otherwise.
fn per_sample(s: &ConvShape, out: &mut [f32], chunk: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    if s.per_sample_threads() {
        out.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(b, o)| f(b, o));
    } else {
        out.chunks_mut(chunk).enumerate().for_each(|(b, o)| f(b, o));
    }
}

/// Forward: `x [batch, c_in, h, w]`, `weight [c_out, c_in, kh, kw]`, optional `bias [c_out]`;
/// returns `[batch, c_out, h', w']`.
pub fn forward(s: &ConvShape, x: &[f32], weight: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    assert!(s.is_supported(), "unsupported convolution {s:?}");
    assert_eq!(x.len(), s.batch * s.in_len());
    assert_eq!(weight.len(), s.c_out * s.k());
    let (k, n) = (s.k(), s.n());
    let parallelism = s.gemm_parallelism(2 * s.c_out * k * n);
    let mut out = vec![0.0f32; s.batch * s.out_len()];
    per_sample(s, &mut out, s.out_len(), |b, ob| {
        let xb = &x[b * s.in_len()..][..s.in_len()];
        if let Some(bias) = bias {
            for (row, &v) in ob.chunks_exact_mut(n).zip(bias) {
                row.fill(v);
            }
        }
        let w = (weight, 1, k as isize);
        if s.is_pointwise() {
            matmul(
                s.c_out,
                n,
                k,
                ob,
                bias.is_some(),
                w,
                (xb, 1, n as isize),
                parallelism,
            );
        } else {
            with_scratch(k * n, |col| {
                im2col(s, xb, col);
                matmul(
                    s.c_out,
                    n,
                    k,
                    ob,
                    bias.is_some(),
                    w,
                    (col, 1, n as isize),
                    parallelism,
                );
            });
        }
    });
    out
}

/// Gradient of the input, `[batch, c_in, h, w]`, from the output gradient `dy`.
pub fn backward_input(s: &ConvShape, dy: &[f32], weight: &[f32]) -> Vec<f32> {
    assert!(s.is_supported(), "unsupported convolution {s:?}");
    assert_eq!(dy.len(), s.batch * s.out_len());
    let (k, n) = (s.k(), s.n());
    if s.stride == [1, 1] && !s.is_pointwise() {
        // At stride 1, dX is the "full" convolution of dY with the kernel flipped in space
        // and with its channel axes swapped; padding k-1-p brings it back to h×w.
        let flipped = flip_transpose(s, weight);
        let t = ConvShape {
            c_in: s.c_out,
            h: s.out_h(),
            w: s.out_w(),
            c_out: s.c_in,
            pad: [s.kh - 1 - s.pad[0], s.kw - 1 - s.pad[1]],
            ..*s
        };
        debug_assert_eq!((t.out_h(), t.out_w()), (s.h, s.w));
        return forward(&t, dy, &flipped, None);
    }
    let parallelism = s.gemm_parallelism(2 * s.c_out * k * n);
    let mut dx = vec![0.0f32; s.batch * s.in_len()];
    // Weight as [K, c_out]: element (k, co) lies at co·K + k.
    let wt = (weight, k as isize, 1);
    per_sample(s, &mut dx, s.in_len(), |b, dxb| {
        let dyb = (&dy[b * s.out_len()..][..s.out_len()], 1, n as isize);
        if s.is_pointwise() {
            matmul(k, n, s.c_out, dxb, false, wt, dyb, parallelism);
        } else {
            with_scratch(k * n, |col| {
                matmul(k, n, s.c_out, col, false, wt, dyb, parallelism);
                col2im_add(s, col, dxb);
            });
        }
    });
    dx
}

/// `weight [c_out, c_in, kh, kw]` as `[c_in, c_out, kh, kw]`, flipped in both spatial axes.
fn flip_transpose(s: &ConvShape, weight: &[f32]) -> Vec<f32> {
    let (kh, kw) = (s.kh, s.kw);
    let mut out = vec![0.0f32; weight.len()];
    for co in 0..s.c_out {
        for ci in 0..s.c_in {
            let src = &weight[(co * s.c_in + ci) * kh * kw..][..kh * kw];
            let dst = &mut out[(ci * s.c_out + co) * kh * kw..][..kh * kw];
            for (i, v) in src.iter().enumerate() {
                dst[kh * kw - 1 - i] = *v;
            }
        }
    }
    out
}

/// Gradient of the weight, `[c_out, c_in, kh, kw]`, from the input `x` and output gradient `dy`.
pub fn backward_weight(s: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    assert!(s.is_supported(), "unsupported convolution {s:?}");
    assert_eq!(x.len(), s.batch * s.in_len());
    assert_eq!(dy.len(), s.batch * s.out_len());
    let (k, n) = (s.k(), s.n());
    // dW [c_out, K] += dY_b [c_out, N] · col_bᵀ [N, K]; col_bᵀ's element (n, k) is at k·N + n.
    let accumulate = |samples: std::ops::Range<usize>, dw: &mut [f32], parallelism| {
        for (i, b) in samples.enumerate() {
            let xb = &x[b * s.in_len()..][..s.in_len()];
            let dyb = (&dy[b * s.out_len()..][..s.out_len()], 1, n as isize);
            if s.is_pointwise() {
                matmul(
                    s.c_out,
                    k,
                    n,
                    dw,
                    i > 0,
                    dyb,
                    (xb, n as isize, 1),
                    parallelism,
                );
            } else {
                with_scratch(k * n, |col| {
                    im2col(s, xb, col);
                    matmul(
                        s.c_out,
                        k,
                        n,
                        dw,
                        i > 0,
                        dyb,
                        (col, n as isize, 1),
                        parallelism,
                    );
                });
            }
        }
    };
    let len = s.c_out * k;
    if !s.per_sample_threads() {
        let mut dw = vec![0.0f32; len];
        accumulate(0..s.batch, &mut dw, s.gemm_parallelism(2 * len * n));
        return dw;
    }
    // One partial sum per thread over a contiguous run of samples, then their sum.
    let parts = rayon::current_num_threads().min(s.batch);
    let partials: Vec<Vec<f32>> = (0..parts)
        .into_par_iter()
        .map(|p| {
            let mut dw = vec![0.0f32; len];
            accumulate(
                p * s.batch / parts..(p + 1) * s.batch / parts,
                &mut dw,
                Parallelism::None,
            );
            dw
        })
        .collect();
    let mut partials = partials.into_iter();
    let mut dw = partials.next().unwrap_or_else(|| vec![0.0; len]);
    for part in partials {
        dw.iter_mut().zip(&part).for_each(|(a, b)| *a += b);
    }
    dw
}

/// Gradient of the bias, `[c_out]`: the output gradient summed over samples and pixels.
pub fn backward_bias(s: &ConvShape, dy: &[f32]) -> Vec<f32> {
    let n = s.n();
    let mut db = vec![0.0f32; s.c_out];
    for sample in dy.chunks_exact(s.out_len()) {
        for (d, row) in db.iter_mut().zip(sample.chunks_exact(n)) {
            *d += row.iter().sum::<f32>();
        }
    }
    db
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The convolution written out as its definition, in f64.
    fn reference(s: &ConvShape, x: &[f32], w: &[f32]) -> Vec<f64> {
        let (oh, ow) = (s.out_h(), s.out_w());
        let mut out = vec![0.0f64; s.batch * s.c_out * oh * ow];
        for b in 0..s.batch {
            for co in 0..s.c_out {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut acc = 0.0f64;
                        for ci in 0..s.c_in {
                            for ky in 0..s.kh {
                                for kx in 0..s.kw {
                                    let iy = (oy * s.stride[0] + ky) as isize - s.pad[0] as isize;
                                    let ix = (ox * s.stride[1] + kx) as isize - s.pad[1] as isize;
                                    if iy < 0 || ix < 0 || iy >= s.h as isize || ix >= s.w as isize
                                    {
                                        continue;
                                    }
                                    acc += x[((b * s.c_in + ci) * s.h + iy as usize) * s.w
                                        + ix as usize]
                                        as f64
                                        * w[((co * s.c_in + ci) * s.kh + ky) * s.kw + kx] as f64;
                                }
                            }
                        }
                        out[((b * s.c_out + co) * oh + oy) * ow + ox] = acc;
                    }
                }
            }
        }
        out
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        (0..len)
            .map(|i| {
                let v = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8;
                (v % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn forward_and_gradients_match_the_definition() {
        // The adjoint identities <conv(x), dy> = <x, dX(dy)> = <w, dW(x, dy)> pin both
        // gradients to the forward, and the forward to the definition.
        for s in [
            ConvShape {
                batch: 2,
                c_in: 3,
                h: 5,
                w: 7,
                c_out: 4,
                kh: 3,
                kw: 3,
                stride: [1, 1],
                pad: [1, 1],
            },
            ConvShape {
                batch: 1,
                c_in: 2,
                h: 6,
                w: 5,
                c_out: 3,
                kh: 3,
                kw: 3,
                stride: [2, 2],
                pad: [1, 1],
            },
            ConvShape {
                batch: 3,
                c_in: 4,
                h: 4,
                w: 4,
                c_out: 2,
                kh: 1,
                kw: 1,
                stride: [1, 1],
                pad: [0, 0],
            },
            ConvShape {
                batch: 2,
                c_in: 2,
                h: 7,
                w: 6,
                c_out: 3,
                kh: 3,
                kw: 2,
                stride: [2, 1],
                pad: [0, 1],
            },
        ] {
            let x = values(s.batch * s.in_len(), 1);
            let w = values(s.c_out * s.k(), 2);
            let dy = values(s.batch * s.out_len(), 3);
            let y = forward(&s, &x, &w, None);
            for (a, b) in y.iter().zip(reference(&s, &x, &w)) {
                assert!((*a as f64 - b).abs() < 1e-4, "{s:?}: {a} vs {b}");
            }
            let dot = |a: &[f32], b: &[f32]| {
                a.iter()
                    .zip(b)
                    .map(|(p, q)| *p as f64 * *q as f64)
                    .sum::<f64>()
            };
            let lhs = dot(&y, &dy);
            let dx = backward_input(&s, &dy, &w);
            let dw = backward_weight(&s, &x, &dy);
            assert!(
                (lhs - dot(&x, &dx)).abs() < 1e-3 * lhs.abs().max(1.0),
                "{s:?} dx"
            );
            assert!(
                (lhs - dot(&w, &dw)).abs() < 1e-3 * lhs.abs().max(1.0),
                "{s:?} dw"
            );
        }
    }
}
