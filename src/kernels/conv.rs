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

use super::with_scratch;

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

    /// At stride 1, the convolution whose output is this one's input gradient: from the
    /// output gradient, with the kernel flipped and its channel axes swapped; padding
    /// `k − 1 − p` brings the "full" convolution back to `h × w`.
    pub(super) fn transposed(&self) -> ConvShape {
        debug_assert_eq!(self.stride, [1, 1]);
        ConvShape {
            c_in: self.c_out,
            h: self.out_h(),
            w: self.out_w(),
            c_out: self.c_in,
            pad: [self.kh - 1 - self.pad[0], self.kw - 1 - self.pad[1]],
            ..*self
        }
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

    /// Samples per gemm: enough that its pixel dimension reaches [`GEMM_PIXELS`], since a
    /// gemm over the 64 pixels of one 8×8 map is mostly packing and loop overhead.
    fn group(&self) -> usize {
        GEMM_PIXELS.div_ceil(self.n()).clamp(1, self.batch)
    }

    /// Groups run on separate threads when there are enough of them to share out.
    fn threads_per_group(&self) -> bool {
        self.batch.div_ceil(self.group()) >= 2 && rayon::current_num_threads() > 1
    }

    /// Whether each gemm splits its columns over the threads: when the groups do not run
    /// in parallel and the gemm is large enough to pay for it.
    fn gemm_threads(&self) -> bool {
        !self.threads_per_group() && 2 * self.c_out * self.k() * self.n() >= 1 << 21
    }
}

/// See [`ConvShape::group`].
const GEMM_PIXELS: usize = 1024;

thread_local! {
    // Scratch buffers per thread, reused: a fresh multi-megabyte buffer per call costs page
    // faults comparable to the gemm itself.
    static COLUMNS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static PIXELS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Fills the `kh·kw` rows of `col` (`ld` apart, `H'W'` values each) with the windows of one
/// input channel `plane` (`[h, w]`) of one sample.
fn im2col(s: &ConvShape, plane: &[f32], col: &mut [f32], ld: usize) {
    let (oh, ow, n) = (s.out_h(), s.out_w(), s.n());
    let [sh, sw] = s.stride;
    let [ph, pw] = s.pad;
    for row_index in 0..s.kh * s.kw {
        let row = &mut col[row_index * ld..][..n];
        let kx = row_index % s.kw;
        let ky = row_index / s.kw;
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

/// Adds the windows in the rows of `col` (laid out as [`im2col`] writes them) back onto one
/// sample's input gradient `dx`: the adjoint of [`im2col`].
fn col2im_add(s: &ConvShape, col: &[f32], ld: usize, dx: &mut [f32]) {
    let (ow, n) = (s.out_w(), s.n());
    let [sh, sw] = s.stride;
    let [ph, pw] = s.pad;
    for row_index in 0..s.k() {
        let row = &col[row_index * ld..][..n];
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

/// `dst [m, n] (row-major) = (accumulate ? dst : 0) + lhs · rhs`, the operands given as
/// (values, column stride, row stride). With `threads`, the columns are split into one block
/// per thread: gemm's own threading splits a row-major output of few rows poorly (measured:
/// 130 against 227 GFLOP/s on 2 cores for 64 × 1024 × 576).
#[allow(clippy::too_many_arguments)]
fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    lhs: (&[f32], isize, isize),
    rhs: (&[f32], isize, isize),
    threads: bool,
) {
    assert!(dst.len() >= m * n, "gemm destination too small");
    let reach = |(_, cs, rs): (&[f32], isize, isize), rows: usize, cols: usize| {
        (rows.saturating_sub(1) as isize * rs + cols.saturating_sub(1) as isize * cs) as usize
    };
    assert!(reach(lhs, m, k) < lhs.0.len() && reach(rhs, k, n) < rhs.0.len());
    let blocks = if threads {
        rayon::current_num_threads().min(n.div_ceil(64)).max(1)
    } else {
        1
    };
    let dst_ptr = SendPtr(dst.as_mut_ptr());
    let block = |i: usize| {
        let (j0, j1) = (i * n / blocks, (i + 1) * n / blocks);
        // SAFETY: the asserts above keep every element gemm reads or writes inside the
        // slices; `dst` is borrowed mutably, so it aliases neither operand; each block writes
        // only its own columns j0..j1 of `dst`.
        unsafe {
            gemm::gemm(
                m,
                j1 - j0,
                k,
                dst_ptr.get().add(j0),
                1,
                n as isize,
                accumulate,
                lhs.0.as_ptr(),
                lhs.1,
                lhs.2,
                rhs.0.as_ptr().offset(j0 as isize * rhs.1),
                rhs.1,
                rhs.2,
                1.0,
                1.0,
                false,
                false,
                false,
                Parallelism::None,
            );
        }
    };
    if blocks == 1 {
        block(0);
    } else {
        (0..blocks).into_par_iter().for_each(block);
    }
}

/// An output pointer shared by tasks that write disjoint elements of it: the column blocks of
/// [`matmul`], the tiles of the direct kernels.
#[derive(Clone, Copy)]
pub(super) struct SendPtr(pub(super) *mut f32);
// SAFETY: every user shares it only among tasks that write disjoint elements (see `matmul`
// and `direct::run`).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    pub(super) fn get(self) -> *mut f32 {
        self.0
    }
}

/// Runs `f(first sample, samples, their chunk of out)` over the groups of samples, `per`
/// values of `out` to a sample: in parallel when [`ConvShape::threads_per_group`].
fn per_group(
    s: &ConvShape,
    out: &mut [f32],
    per: usize,
    f: impl Fn(usize, usize, &mut [f32]) + Sync,
) {
    let chunk = s.group() * per;
    let body = |(i, o): (usize, &mut [f32])| f(i * s.group(), o.len() / per, o);
    if s.threads_per_group() {
        out.par_chunks_mut(chunk).enumerate().for_each(body);
    } else {
        out.chunks_mut(chunk).enumerate().for_each(body);
    }
}

/// The windows of samples `b0..b0+g` side by side: `[K, g·H'W']` (a view of `x` itself for a
/// single sample of a pointwise convolution). Filled by all threads when the gemm after it
/// uses them all, by this one otherwise.
fn with_columns<R>(
    s: &ConvShape,
    x: &[f32],
    b0: usize,
    g: usize,
    f: impl FnOnce(&[f32]) -> R,
) -> R {
    let n = s.n();
    if g == 1 && s.is_pointwise() {
        return f(&x[b0 * s.in_len()..][..s.in_len()]);
    }
    let ld = g * n;
    // Rows of the same input channel, one task's worth.
    let rows = s.kh * s.kw;
    let fill = |c: usize, block: &mut [f32]| {
        for j in 0..g {
            let xb = &x[(b0 + j) * s.in_len()..][..s.in_len()];
            let plane = &xb[c * s.h * s.w..][..s.h * s.w];
            im2col(s, plane, &mut block[j * n..], ld);
        }
    };
    with_scratch(&COLUMNS, s.k() * ld, |col| {
        if s.gemm_threads() {
            col.par_chunks_mut(rows * ld)
                .enumerate()
                .for_each(|(c, block)| fill(c, block));
        } else {
            col.chunks_mut(rows * ld)
                .enumerate()
                .for_each(|(c, block)| fill(c, block));
        }
        f(col)
    })
}

/// Indices of one channel's run of `n` values for sample `j`: in `[g, c, n]` and in `[c, g·n]`.
fn runs(g: usize, c: usize, n: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..g).flat_map(move |j| (0..c).map(move |ch| ((j * c + ch) * n, ch * g * n + j * n)))
}

/// `[c, g·n]` (`side`) into `[g, c, n]` (`samples`).
fn side_to_samples(g: usize, c: usize, n: usize, side: &[f32], samples: &mut [f32]) {
    for (a, b) in runs(g, c, n) {
        samples[a..a + n].copy_from_slice(&side[b..b + n]);
    }
}

/// `[g, c, n]` (`samples`) into `[c, g·n]` (`side`).
fn samples_to_side(g: usize, c: usize, n: usize, samples: &[f32], side: &mut [f32]) {
    for (a, b) in runs(g, c, n) {
        side[b..b + n].copy_from_slice(&samples[a..a + n]);
    }
}

/// Forward: `x [batch, c_in, h, w]`, `weight [c_out, c_in, kh, kw]`, optional `bias [c_out]`;
/// returns `[batch, c_out, h', w']`. Direct kernels where the CPU and shape allow
/// (`direct.rs`), im2col and gemm otherwise.
pub fn forward(s: &ConvShape, x: &[f32], weight: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    if super::direct::covers(s) {
        return super::direct::forward(s, x, weight, bias);
    }
    forward_im2col(s, x, weight, bias)
}

/// [`forward`] as im2col and one gemm per group of samples, for every supported shape.
pub(super) fn forward_im2col(
    s: &ConvShape,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
) -> Vec<f32> {
    assert!(s.is_supported(), "unsupported convolution {s:?}");
    assert_eq!(x.len(), s.batch * s.in_len());
    assert_eq!(weight.len(), s.c_out * s.k());
    let (k, n) = (s.k(), s.n());
    let threads = s.gemm_threads();
    let mut out = vec![0.0f32; s.batch * s.out_len()];
    per_group(s, &mut out, s.out_len(), |b0, g, og| {
        with_columns(s, x, b0, g, |col| {
            let run = |y: &mut [f32]| {
                if let Some(bias) = bias {
                    for (row, &v) in y.chunks_exact_mut(g * n).zip(bias) {
                        row.fill(v);
                    }
                }
                let w = (weight, 1, k as isize);
                let cols = (col, 1, (g * n) as isize);
                matmul(s.c_out, g * n, k, y, bias.is_some(), w, cols, threads);
            };
            if g == 1 {
                run(og);
            } else {
                with_scratch(&PIXELS, s.c_out * g * n, |y| {
                    run(y);
                    side_to_samples(g, s.c_out, n, y, og);
                });
            }
        })
    });
    out
}

/// Gradient of the input, `[batch, c_in, h, w]`, from the output gradient `dy`.
pub fn backward_input(s: &ConvShape, dy: &[f32], weight: &[f32]) -> Vec<f32> {
    assert!(s.is_supported(), "unsupported convolution {s:?}");
    assert_eq!(dy.len(), s.batch * s.out_len());
    let (k, n) = (s.k(), s.n());
    if super::direct::covers(s) {
        return super::direct::backward_input(s, dy, weight);
    }
    if s.stride == [1, 1] && !s.is_pointwise() {
        // At stride 1, dX is the "full" convolution of dY with the kernel flipped in space
        // and with its channel axes swapped; padding k-1-p brings it back to h×w.
        let flipped = flip_transpose(s, weight);
        return forward(&s.transposed(), dy, &flipped, None);
    }
    let threads = s.gemm_threads();
    let mut dx = vec![0.0f32; s.batch * s.in_len()];
    // Weight as [K, c_out]: element (k, co) lies at co·K + k.
    let wt = (weight, k as isize, 1);
    per_group(s, &mut dx, s.in_len(), |b0, g, dxg| {
        with_output_gradient(s, dy, b0, g, |dyg| {
            let dyg = (dyg, 1, (g * n) as isize);
            if g == 1 && s.is_pointwise() {
                matmul(k, n, s.c_out, dxg, false, wt, dyg, threads);
                return;
            }
            with_scratch(&COLUMNS, k * g * n, |col| {
                matmul(k, g * n, s.c_out, col, false, wt, dyg, threads);
                for j in 0..g {
                    let dxb = &mut dxg[j * s.in_len()..][..s.in_len()];
                    col2im_add(s, &col[j * n..], g * n, dxb);
                }
            });
        })
    });
    dx
}

/// The output gradient of samples `b0..b0+g` as `[c_out, g·H'W']` (a view for one sample).
fn with_output_gradient<R>(
    s: &ConvShape,
    dy: &[f32],
    b0: usize,
    g: usize,
    f: impl FnOnce(&[f32]) -> R,
) -> R {
    let samples = &dy[b0 * s.out_len()..][..g * s.out_len()];
    if g == 1 {
        return f(samples);
    }
    with_scratch(&PIXELS, g * s.out_len(), |side| {
        samples_to_side(g, s.c_out, s.n(), samples, side);
        f(side)
    })
}

/// `weight [c_out, c_in, kh, kw]` as `[c_in, c_out, kh, kw]`, flipped in both spatial axes.
pub(super) fn flip_transpose(s: &ConvShape, weight: &[f32]) -> Vec<f32> {
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
    if super::direct::covers_weight(s) {
        return super::direct::backward_weight(s, x, dy);
    }
    backward_weight_im2col(s, x, dy)
}

/// [`backward_weight`] as one gemm per group of samples over their im2col matrix.
pub(super) fn backward_weight_im2col(s: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    assert!(s.is_supported(), "unsupported convolution {s:?}");
    assert_eq!(x.len(), s.batch * s.in_len());
    assert_eq!(dy.len(), s.batch * s.out_len());
    let (k, n) = (s.k(), s.n());
    let len = s.c_out * k;
    let group = s.group();
    let groups = s.batch.div_ceil(group);
    // dW [c_out, K] += dY_g [c_out, g·N] · col_gᵀ [g·N, K]; col_gᵀ's element (p, k) is at
    // k·g·N + p.
    let accumulate = |i: usize, dw: &mut [f32], threads| {
        let b0 = i * group;
        let g = group.min(s.batch - b0);
        with_columns(s, x, b0, g, |col| {
            with_output_gradient(s, dy, b0, g, |dyg| {
                let dyg = (dyg, 1, (g * n) as isize);
                let colt = (col, (g * n) as isize, 1);
                matmul(s.c_out, k, g * n, dw, true, dyg, colt, threads);
            })
        });
    };
    if !s.threads_per_group() {
        let mut dw = vec![0.0f32; len];
        (0..groups).for_each(|i| accumulate(i, &mut dw, s.gemm_threads()));
        return dw;
    }
    // One partial sum per thread, then their sum.
    (0..groups)
        .into_par_iter()
        .fold(
            || vec![0.0f32; len],
            |mut dw, i| {
                accumulate(i, &mut dw, false);
                dw
            },
        )
        .reduce(
            || vec![0.0f32; len],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(p, q)| *p += q);
                a
            },
        )
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
    use super::super::test_values as values;
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
