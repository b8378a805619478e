//! Direct stride-1 convolution for x86-64 CPUs with AVX-512, found at run time: the forward
//! pass, through it the input gradient, and the 3×3 weight gradient, without an im2col matrix.
//!
//! Why: the im2col path writes every input value `kh·kw` times and gemm packs that matrix once
//! more, so at our sizes (8 to 128 channels, 4×4 to 32×32 maps) two memory passes over nine
//! times the input cost as much as the multiply-adds. Here each input channel is copied once
//! into zero-padded planes, the samples' planes one after another ([`Stack`]); on a plane
//! `Wp = w + 2·pad` wide, output position `q` reads input `q + ky·Wp + kx` for tap (ky, kx), so
//! sixteen neighbouring outputs read sixteen neighbouring inputs, one vector load, whatever the
//! map's size (the `kw − 1` columns past each row's end and the rows between samples are
//! computed and dropped). A register tile of 4 output channels × 6 vectors of 16 positions
//! stays in registers through every input channel and tap: per tap, 4 weight broadcasts and 6
//! loads feed 24 fused multiply-adds.

use std::cell::RefCell;

use rayon::prelude::*;

use super::avx512;
use super::conv::{ConvShape, SendPtr};
use super::with_scratch;

/// Output channels per register tile.
const CO: usize = 4;
/// Vectors of 16 positions per register tile.
const V: usize = 6;
const LANES: usize = 16;

/// Whether [`forward`] runs this convolution: stride 1 with a real window (1×1 convolutions
/// are plain gemms already), on a CPU with AVX-512.
pub fn covers(s: &ConvShape) -> bool {
    s.stride == [1, 1] && s.kh * s.kw > 1 && s.is_supported() && avx512()
}

thread_local! {
    static PADDED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static ROWS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static SPREAD: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Where the kernel finds weight (output channel `o`, input channel `i`, tap `t`):
/// `origin + o·lane + i·channel + t·tap` in the weight slice. The forward pass reads the
/// `[c_out, c_in, kh, kw]` weight as it is; the input gradient reads the same slice with the
/// channel axes swapped and the taps reversed, so neither copies the weight.
#[derive(Clone, Copy, Debug)]
struct WeightLayout {
    origin: isize,
    lane: isize,
    channel: isize,
    tap: isize,
}

/// Forward: `x [batch, c_in, h, w]`, `weight [c_out, c_in, kh, kw]`, optional `bias [c_out]`;
/// returns `[batch, c_out, h', w']`. Only for shapes [`covers`] accepts.
pub fn forward(s: &ConvShape, x: &[f32], weight: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let taps = (s.kh * s.kw) as isize;
    let layout = WeightLayout {
        origin: 0,
        lane: s.c_in as isize * taps,
        channel: taps,
        tap: 1,
    };
    run(s, x, weight, layout, bias)
}

/// Gradient of the input of the stride-1 convolution `s`, `[batch, c_in, h, w]`, from the
/// output gradient `dy`: the "full" convolution of `dy` with the kernel flipped in space and
/// its channel axes swapped (padding `k − 1 − p` brings it back to `h × w`).
pub fn backward_input(s: &ConvShape, dy: &[f32], weight: &[f32]) -> Vec<f32> {
    let t = s.transposed();
    let taps = (s.kh * s.kw) as isize;
    let layout = WeightLayout {
        origin: taps - 1,
        lane: taps,
        channel: s.c_in as isize * taps,
        tap: -1,
    };
    run(&t, dy, weight, layout, None)
}

/// Vectors of positions per task of [`run`]: four full register tiles.
const CHUNK: usize = 4 * V;

/// Every sample's padded plane of one channel, one after another: a tile then runs on across
/// samples, so small maps (a 4×4 map is 24 positions, under two vectors) still fill whole
/// register tiles. Output position `q = b·Hp·Wp + y·Wp + x` reads input `q + ky·Wp + kx` of the
/// same sample for every valid `y < h'`, `x < w'`; the rest are computed and dropped.
struct Stack {
    /// Padded width.
    wp: usize,
    /// Floats per padded plane (`Hp·Wp`).
    plane: usize,
    /// Vectors of positions computed per output channel.
    vectors: usize,
    /// Floats per input channel: the samples' planes and the slack the last vector reads past.
    len: usize,
}

impl Stack {
    fn of(s: &ConvShape) -> Stack {
        let (wp, hp) = (s.w + 2 * s.pad[1], s.h + 2 * s.pad[0]);
        let plane = hp * wp;
        let vectors = (s.batch * plane).div_ceil(LANES);
        let reach = vectors * LANES + (s.kh - 1) * wp + s.kw - 1;
        Stack {
            wp,
            plane,
            vectors,
            len: reach.div_ceil(LANES) * LANES,
        }
    }
}

/// `x [batch, c, h, w]` into `[c][batch][Hp·Wp]` zero-padded planes, `stack.len` per channel.
fn pad_stacked(s: &ConvShape, stack: &Stack, x: &[f32], dst: &mut [f32]) {
    let (h, w) = (s.h, s.w);
    let [ph, pw] = s.pad;
    let in_len = s.c_in * h * w;
    let fill = |(ci, out): (usize, &mut [f32])| {
        let (planes, slack) = out.split_at_mut(s.batch * stack.plane);
        for (b, plane) in planes.chunks_exact_mut(stack.plane).enumerate() {
            let channel = &x[b * in_len + ci * h * w..][..h * w];
            plane[..ph * stack.wp].fill(0.0);
            for (y, row) in plane[ph * stack.wp..][..h * stack.wp]
                .chunks_exact_mut(stack.wp)
                .enumerate()
            {
                row[..pw].fill(0.0);
                row[pw..pw + w].copy_from_slice(&channel[y * w..][..w]);
                row[pw + w..].fill(0.0);
            }
            plane[(ph + h) * stack.wp..].fill(0.0);
        }
        slack.fill(0.0);
    };
    if x.len() >= 1 << 15 {
        dst.par_chunks_exact_mut(stack.len)
            .enumerate()
            .for_each(fill);
    } else {
        dst.chunks_exact_mut(stack.len).enumerate().for_each(fill);
    }
}

fn run(
    s: &ConvShape,
    x: &[f32],
    weight: &[f32],
    layout: WeightLayout,
    bias: Option<&[f32]>,
) -> Vec<f32> {
    assert!(covers(s), "direct convolution does not cover {s:?}");
    assert_eq!(x.len(), s.batch * s.c_in * s.h * s.w);
    assert_eq!(weight.len(), s.c_out * s.c_in * s.kh * s.kw);
    let stack = Stack::of(s);
    let offsets: Vec<usize> = (0..s.kh)
        .flat_map(|ky| (0..s.kw).map(move |kx| ky * stack.wp + kx))
        .collect();
    let (oh, ow) = (s.out_h(), s.out_w());
    let blocks = s.c_out.div_ceil(CO);
    let chunks = stack.vectors.div_ceil(CHUNK);
    // Every element is written below before the length is set: zeroing it first would be
    // one more pass over the output.
    let out_len = s.batch * s.c_out * oh * ow;
    let mut out = Vec::<f32>::with_capacity(out_len);
    let out_ptr = SendPtr(out.as_mut_ptr());
    with_scratch(&PADDED, s.c_in * stack.len, |padded| {
        pad_stacked(s, &stack, x, padded);
        let padded = &*padded;
        // Task (chunk of positions, block of output channels); one thread's run of tasks
        // shares a chunk's input, which stays in its cache.
        let task = |i: usize| {
            let (chunk, block) = (i / blocks, i % blocks);
            let v0 = chunk * CHUNK;
            let vectors = CHUNK.min(stack.vectors - v0);
            // Lanes past the last channel repeat it; their rows are dropped.
            let channel = |lane: usize| (block * CO + lane).min(s.c_out - 1);
            let lanes: [usize; CO] = std::array::from_fn(|lane| {
                (layout.origin + channel(lane) as isize * layout.lane) as usize
            });
            let bias_block: [f32; CO] =
                std::array::from_fn(|lane| bias.map_or(0.0, |b| b[channel(lane)]));
            let weights = Weights {
                values: weight,
                lanes,
                layout,
            };
            let operands = Operands {
                x: &padded[v0 * LANES..],
                xs: stack.len,
                c_in: s.c_in,
                offsets: &offsets,
            };
            let ld = CHUNK * LANES;
            with_scratch(&ROWS, CO * ld, |rows| {
                // SAFETY: `avx512()` held in `covers`; `channels_tile` checks the rest.
                unsafe { channels_tile(&operands, &weights, bias_block, rows, ld, vectors) };
                // The valid positions of the chunk go to their outputs: (b, co, y, ·) is the
                // run of w' positions from q = b·Hp·Wp + y·Wp.
                let (c0, c1) = (v0 * LANES, (v0 + vectors) * LANES);
                let samples = (c0 / stack.plane)..(c1.div_ceil(stack.plane)).min(s.batch);
                for b in samples {
                    let first = b * stack.plane;
                    let ys = (c0.saturating_sub(first) / stack.wp)
                        ..(c1.saturating_sub(first).div_ceil(stack.wp)).min(oh);
                    for y in ys {
                        let q = first + y * stack.wp;
                        let (lo, hi) = (q.max(c0), (q + ow).min(c1));
                        if lo >= hi {
                            continue;
                        }
                        for lane in 0..CO.min(s.c_out - block * CO) {
                            let co = block * CO + lane;
                            let src = &rows[lane * ld + lo - c0..][..hi - lo];
                            let at = ((b * s.c_out + co) * oh + y) * ow + lo - q;
                            assert!(at + src.len() <= out_len);
                            // SAFETY: inside `out` (checked); no other task writes these
                            // elements (each position of each channel has one chunk and one
                            // block), and nothing reads `out` until every task is done.
                            unsafe {
                                std::ptr::copy_nonoverlapping(
                                    src.as_ptr(),
                                    out_ptr.get().add(at),
                                    src.len(),
                                )
                            };
                        }
                    }
                }
            });
        };
        let tasks = chunks * blocks;
        if tasks > 1 && rayon::current_num_threads() > 1 {
            (0..tasks).into_par_iter().for_each(task);
        } else {
            (0..tasks).for_each(task);
        }
    });
    // SAFETY: the tasks wrote every element: the chunks cover positions 0 to
    // `stack.vectors · 16`, past every output's position, and the blocks every channel.
    unsafe { out.set_len(out_len) };
    out
}

/// Whether [`backward_weight`] runs this convolution: 3×3 at stride 1 on maps of 16×16 or
/// more, on a CPU with AVX-512. On smaller maps most stacked positions are padding (36 for
/// the 16 outputs of a 4×4 map), which the im2col gemm does not pay for: measured on a
/// training step of the shipped UNet, 690 ms with every map here against 570-600 ms with
/// 8×8 and 4×4 maps left to the gemm (docs/experiments.md, 2026-12-06).
pub fn covers_weight(s: &ConvShape) -> bool {
    s.kh == 3 && s.kw == 3 && s.out_h() * s.out_w() >= 256 && covers(s)
}

/// Output channels per weight-gradient tile (each with all nine taps in registers).
const WCO: usize = 3;
/// Input a thread sweeps before moving to the next output channels: about a megabyte at
/// our sizes, so it is read again from L2, not from memory.
const SWEEP_BYTES: usize = 1 << 20;

/// Gradient of the weight of the 3×3 stride-1 convolution `s`, `[c_out, c_in, 3, 3]`, from
/// the input `x` and the output gradient `dy`: `dW[o, i, t] = Σ_q dy[o, q] · x[i, q +
/// offset(t)]` over the stacked padded planes of [`Stack`], with the output gradient laid out
/// the same way (zeros at the positions that are not outputs), so that one vector of it meets
/// one vector of input per tap, across samples.
pub fn backward_weight(s: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    assert!(
        covers_weight(s),
        "direct weight gradient does not cover {s:?}"
    );
    let stack = Stack::of(s);
    let (oh, ow) = (s.out_h(), s.out_w());
    assert_eq!(x.len(), s.batch * s.c_in * s.h * s.w);
    assert_eq!(dy.len(), s.batch * s.c_out * oh * ow);
    let offsets: [usize; 9] = std::array::from_fn(|t| (t / 3) * stack.wp + t % 3);
    let blocks = s.c_out.div_ceil(WCO);
    let dy_len = stack.vectors * LANES;
    let sweep = (SWEEP_BYTES / (s.c_in * LANES * 4)).max(1);
    let mut dw = vec![0.0f32; s.c_out * s.c_in * 9];
    with_scratch(&PADDED, s.c_in * stack.len, |padded| {
        pad_stacked(s, &stack, x, padded);
        with_scratch(&SPREAD, s.c_out * dy_len, |spread| {
            spread_stacked(s, &stack, dy, spread);
            let (padded, spread) = (&*padded, &*spread);
            // WCO × 9 partial sums per (block of output channels, input channel), blocks
            // outer so that a thread's run of tasks shares the output gradient.
            let mut sums = vec![[[0.0f32; LANES]; WCO * 9]; blocks * s.c_in];
            for v0 in (0..stack.vectors).step_by(sweep) {
                let vectors = sweep.min(stack.vectors - v0);
                let task = |(i, sum): (usize, &mut WeightSums)| {
                    let (block, ci) = (i / s.c_in, i % s.c_in);
                    // Lanes past the last channel repeat it; their sums are dropped below.
                    let lane = |l: usize| (block * WCO + l).min(s.c_out - 1);
                    let dy_at = |l: usize| lane(l) * dy_len + v0 * LANES;
                    let x_at = ci * stack.len + v0 * LANES;
                    // The reads stay in the buffers: a channel's vectors end at `dy_len`, the
                    // input's last tap within `Stack::len`.
                    assert!(dy_at(WCO - 1) + vectors * LANES <= spread.len());
                    assert!(x_at + vectors * LANES + offsets[8] <= padded.len());
                    let args = WeightTileArgs {
                        dy: std::array::from_fn(|l| spread.as_ptr().wrapping_add(dy_at(l))),
                        x: padded.as_ptr().wrapping_add(x_at),
                        offsets,
                        vectors,
                    };
                    // SAFETY: AVX-512F (`covers`); the reads are within the buffers.
                    unsafe { weight_tile(args, sum) };
                };
                if rayon::current_num_threads() > 1 {
                    sums.par_iter_mut().enumerate().for_each(task);
                } else {
                    sums.iter_mut().enumerate().for_each(task);
                }
            }
            for (i, sum) in sums.iter().enumerate() {
                let (block, ci) = (i / s.c_in, i % s.c_in);
                for (l, taps) in sum.chunks_exact(9).enumerate() {
                    let co = block * WCO + l;
                    if co < s.c_out {
                        for (t, lanes) in taps.iter().enumerate() {
                            dw[(co * s.c_in + ci) * 9 + t] = lanes.iter().sum();
                        }
                    }
                }
            }
        })
    });
    dw
}

/// `dy [batch, c_out, h', w']` as `[c_out][stack.vectors · 16]`: output (b, ·, y, x) at
/// position `b·Hp·Wp + y·Wp + x`, zeros everywhere else.
fn spread_stacked(s: &ConvShape, stack: &Stack, dy: &[f32], out: &mut [f32]) {
    let (oh, ow) = (s.out_h(), s.out_w());
    let fill = |(co, dst): (usize, &mut [f32])| {
        let (planes, tail) = dst.split_at_mut(s.batch * stack.plane);
        for (b, plane) in planes.chunks_exact_mut(stack.plane).enumerate() {
            let src = &dy[(b * s.c_out + co) * oh * ow..][..oh * ow];
            let (rows, rest) = plane.split_at_mut(oh * stack.wp);
            for (row, values) in rows.chunks_exact_mut(stack.wp).zip(src.chunks_exact(ow)) {
                row[..ow].copy_from_slice(values);
                row[ow..].fill(0.0);
            }
            rest.fill(0.0);
        }
        tail.fill(0.0);
    };
    let len = stack.vectors * LANES;
    if dy.len() >= 1 << 15 {
        out.par_chunks_exact_mut(len).enumerate().for_each(fill);
    } else {
        out.chunks_exact_mut(len).enumerate().for_each(fill);
    }
}

/// A weight-gradient tile's operands: each lane's output gradient and the input channel at the
/// sweep's first position, the nine tap offsets, and the sweep's vectors of positions.
struct WeightTileArgs {
    dy: [*const f32; WCO],
    x: *const f32,
    offsets: [usize; 9],
    vectors: usize,
}

/// `WCO × 9` partial sums, sixteen lanes each, carried from one sweep to the next.
type WeightSums = [[f32; LANES]; WCO * 9];

/// Adds one sweep's `WCO` (3) output channels × 9 taps of one input channel to `sums`:
/// 27 accumulators and one input pointer per tap, named one by one for the reason
/// [`tile_kernel`] gives; one loop, so the registers stay put.
macro_rules! weight_kernel {
    ($($t:literal: $a:ident $b:ident $c:ident $x:ident),*) => {
        /// # Safety
        /// AVX-512F; every vector the arguments describe lies within its buffer.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f")]
        unsafe fn weight_tile(args: WeightTileArgs, sums: &mut WeightSums) {
            use std::arch::x86_64::*;
            let WeightTileArgs { dy: [p0, p1, p2], x, offsets, vectors } = args;
            let at = |i: usize| sums[i].as_ptr();
            // SAFETY: each row of `sums` holds sixteen floats.
            $(let (mut $a, mut $b, mut $c) = unsafe {
                (
                    _mm512_maskz_loadu_ps(!0, at($t)),
                    _mm512_maskz_loadu_ps(!0, at(9 + $t)),
                    _mm512_maskz_loadu_ps(!0, at(18 + $t)),
                )
            };)*
            $(let $x = x.wrapping_add(offsets[$t]);)*
            for v in 0..vectors {
                let p = v * LANES;
                // SAFETY: within the buffers by this function's contract.
                unsafe {
                    let d0 = _mm512_maskz_loadu_ps(!0, p0.wrapping_add(p));
                    let d1 = _mm512_maskz_loadu_ps(!0, p1.wrapping_add(p));
                    let d2 = _mm512_maskz_loadu_ps(!0, p2.wrapping_add(p));
                    $(
                        let xv = _mm512_maskz_loadu_ps(!0, $x.wrapping_add(p));
                        $a = _mm512_fmadd_ps(d0, xv, $a);
                        $b = _mm512_fmadd_ps(d1, xv, $b);
                        $c = _mm512_fmadd_ps(d2, xv, $c);
                    )*
                }
            }
            let base = sums.as_mut_ptr().cast::<f32>();
            let at = |i: usize| base.wrapping_add(i * LANES);
            // SAFETY: as above.
            unsafe {
                $(_mm512_mask_storeu_ps(at($t), !0, $a);)*
                $(_mm512_mask_storeu_ps(at(9 + $t), !0, $b);)*
                $(_mm512_mask_storeu_ps(at(18 + $t), !0, $c);)*
            }
        }

        #[cfg(not(target_arch = "x86_64"))]
        unsafe fn weight_tile(_: WeightTileArgs, _: &mut WeightSums) {
            unreachable!("covers() is false off x86-64")
        }
    };
}

weight_kernel!(0: a0 b0 c0 x0, 1: a1 b1 c1 x1, 2: a2 b2 c2 x2, 3: a3 b3 c3 x3, 4: a4 b4 c4 x4,
    5: a5 b5 c5 x5, 6: a6 b6 c6 x6, 7: a7 b7 c7 x7, 8: a8 b8 c8 x8);

/// The weights of one block of output channels: the index of each lane's first weight
/// (input channel 0, tap 0) in `values`, and how to walk from there.
struct Weights<'a> {
    values: &'a [f32],
    lanes: [usize; CO],
    layout: WeightLayout,
}

/// The input a task reads: every input channel from the task's first position on (`xs`
/// apart), and the taps' offsets.
struct Operands<'a> {
    x: &'a [f32],
    xs: usize,
    c_in: usize,
    offsets: &'a [usize],
}

/// `vectors` vectors of positions of one block of `CO` output channels into `rows` (`CO`
/// rows `ld` apart).
///
/// # Safety
/// The CPU supports AVX-512F. Everything else is checked here.
unsafe fn channels_tile(
    input: &Operands<'_>,
    w: &Weights<'_>,
    bias: [f32; CO],
    rows: &mut [f32],
    ld: usize,
    vectors: usize,
) {
    let Operands {
        x,
        xs,
        c_in,
        offsets,
    } = *input;
    let reach = vectors * LANES + offsets.iter().max().copied().unwrap_or(0);
    assert!(c_in > 0 && x.len() >= (c_in - 1) * xs + reach);
    assert!(rows.len() >= (CO - 1) * ld + vectors * LANES && vectors * LANES <= ld);
    // Every weight a lane reads lies inside the slice: its first and last are checked, and
    // the walk between them is monotone.
    let taps = offsets.len() as isize;
    let WeightLayout { channel, tap, .. } = w.layout;
    let last = (c_in as isize - 1) * channel + (taps - 1) * tap;
    for &first in &w.lanes {
        let end = first as isize + last;
        assert!(end >= 0 && (end as usize) < w.values.len() && first < w.values.len());
    }
    let lanes = w.lanes.map(|i| w.values.as_ptr().wrapping_add(i));
    // After a channel's taps, the step to the next channel's first tap.
    let skip = channel - taps * tap;
    let mut v0 = 0;
    while v0 < vectors {
        // The widest tile that fits what is left: 6 vectors, then 3, 2 or 1.
        let n = match vectors - v0 {
            r if r >= V => V,
            r if r >= 3 => 3,
            r => r,
        };
        let args = (
            x.as_ptr().wrapping_add(v0 * LANES),
            xs,
            c_in,
            offsets,
            lanes,
            tap,
            skip,
            &bias,
            rows.as_mut_ptr().wrapping_add(v0 * LANES),
            ld,
        );
        // SAFETY: AVX-512F by this function's contract; the reads and writes were checked
        // above, and the tile's `n` vectors end within `vectors`.
        unsafe {
            match n {
                V => tile6(args),
                3 => tile3(args),
                2 => tile2(args),
                _ => tile1(args),
            }
        }
        v0 += n;
    }
}

/// A tile's operands: input at the tile's first position (channel stride), input channels,
/// tap offsets, each lane's first weight, the weights' step per tap and from one channel's
/// last tap to the next channel's first, bias, output at the tile's first position (channel
/// stride).
type TileArgs<'a> = (
    *const f32,
    usize,
    usize,
    &'a [usize],
    [*const f32; CO],
    isize,
    isize,
    &'a [f32; CO],
    *mut f32,
    usize,
);

/// One register tile of `CO` (4) output channels × `N` vectors, written out variable by
/// variable: the crate is built at a low optimisation level, which keeps arrays of vectors
/// in memory but named vectors in registers.
macro_rules! tile_kernel {
    ($name:ident, [$($i:literal),*], [$($x:ident),*], [$($a0:ident),*], [$($a1:ident),*],
     [$($a2:ident),*], [$($a3:ident),*]) => {
        /// # Safety
        /// AVX-512F; see [`channels_tile`].
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f")]
        unsafe fn $name((x, xs, c_in, offsets, w, tap, skip, bias, out, ld): TileArgs<'_>) {
            use std::arch::x86_64::*;
            let [b0, b1, b2, b3] = bias.map(|b| _mm512_set1_ps(b));
            $(let mut $a0 = b0;)*
            $(let mut $a1 = b1;)*
            $(let mut $a2 = b2;)*
            $(let mut $a3 = b3;)*
            let mut xc = x;
            let [mut w0, mut w1, mut w2, mut w3] = w;
            for _ in 0..c_in {
                for &off in offsets {
                    let xt = xc.wrapping_add(off);
                    // SAFETY: within the operands by the caller's contract.
                    unsafe {
                        $(let $x = _mm512_maskz_loadu_ps(!0, xt.wrapping_add($i * LANES));)*
                        let wv = _mm512_broadcastss_ps(_mm_load_ss(w0));
                        $($a0 = _mm512_fmadd_ps(wv, $x, $a0);)*
                        let wv = _mm512_broadcastss_ps(_mm_load_ss(w1));
                        $($a1 = _mm512_fmadd_ps(wv, $x, $a1);)*
                        let wv = _mm512_broadcastss_ps(_mm_load_ss(w2));
                        $($a2 = _mm512_fmadd_ps(wv, $x, $a2);)*
                        let wv = _mm512_broadcastss_ps(_mm_load_ss(w3));
                        $($a3 = _mm512_fmadd_ps(wv, $x, $a3);)*
                    }
                    w0 = w0.wrapping_offset(tap);
                    w1 = w1.wrapping_offset(tap);
                    w2 = w2.wrapping_offset(tap);
                    w3 = w3.wrapping_offset(tap);
                }
                w0 = w0.wrapping_offset(skip);
                w1 = w1.wrapping_offset(skip);
                w2 = w2.wrapping_offset(skip);
                w3 = w3.wrapping_offset(skip);
                xc = xc.wrapping_add(xs);
            }
            // SAFETY: the tile's outputs lie within the rows, `ld` apart.
            unsafe {
                $(_mm512_mask_storeu_ps(out.wrapping_add($i * LANES), !0, $a0);)*
                $(_mm512_mask_storeu_ps(out.wrapping_add(ld + $i * LANES), !0, $a1);)*
                $(_mm512_mask_storeu_ps(out.wrapping_add(2 * ld + $i * LANES), !0, $a2);)*
                $(_mm512_mask_storeu_ps(out.wrapping_add(3 * ld + $i * LANES), !0, $a3);)*
            }
        }

        #[cfg(not(target_arch = "x86_64"))]
        unsafe fn $name(_: TileArgs<'_>) {
            unreachable!("covers() is false off x86-64")
        }
    };
}

tile_kernel!(
    tile6,
    [0, 1, 2, 3, 4, 5],
    [x0, x1, x2, x3, x4, x5],
    [a0, a1, a2, a3, a4, a5],
    [b0_, b1_, b2_, b3_, b4_, b5_],
    [c0, c1, c2, c3, c4, c5],
    [d0, d1, d2, d3, d4, d5]
);
tile_kernel!(
    tile3,
    [0, 1, 2],
    [x0, x1, x2],
    [a0, a1, a2],
    [b0_, b1_, b2_],
    [c0, c1, c2],
    [d0, d1, d2]
);
tile_kernel!(
    tile2,
    [0, 1],
    [x0, x1],
    [a0, a1],
    [b0_, b1_],
    [c0, c1],
    [d0, d1]
);
tile_kernel!(tile1, [0], [x0], [a0], [b0_], [c0], [d0]);

#[cfg(test)]
mod tests {
    use super::super::{conv, test_values as values};
    use super::*;

    fn close(ours: &[f32], theirs: &[f32], s: &ConvShape) {
        assert_eq!(ours.len(), theirs.len());
        for (a, b) in ours.iter().zip(theirs) {
            assert!(
                (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                "{s:?}: {a} vs {b}"
            );
        }
    }

    #[test]
    fn matches_the_im2col_path() {
        if !avx512() {
            return;
        }
        for (batch, c_in, c_out, h, w, k, pad) in [
            (2, 3, 4, 5, 7, 3, 1),
            (1, 8, 32, 32, 32, 3, 1),
            (9, 6, 7, 8, 8, 3, 1),
            (3, 64, 64, 8, 8, 3, 1),
            (2, 128, 8, 4, 4, 3, 1),
            (1, 5, 6, 9, 4, 3, 0),
            (2, 4, 3, 6, 6, 2, 1),
            (1, 2, 7, 3, 11, 3, 2),
        ] {
            let s = ConvShape {
                batch,
                c_in,
                h,
                w,
                c_out,
                kh: k,
                kw: k,
                stride: [1, 1],
                pad: [pad, pad],
            };
            let x = values(batch * c_in * h * w, 1);
            let wt = values(c_out * c_in * k * k, 2);
            let bias = values(c_out, 3);
            let ours = forward(&s, &x, &wt, Some(&bias));
            let theirs = conv::forward_im2col(&s, &x, &wt, Some(&bias));
            close(&ours, &theirs, &s);
            // The input gradient: the full convolution with the flipped, transposed kernel.
            let dy = values(batch * c_out * s.out_h() * s.out_w(), 4);
            let t = ConvShape {
                c_in: c_out,
                h: s.out_h(),
                w: s.out_w(),
                c_out: c_in,
                pad: [k - 1 - pad, k - 1 - pad],
                ..s
            };
            if covers_weight(&s) {
                close(
                    &backward_weight(&s, &x, &dy),
                    &conv::backward_weight_im2col(&s, &x, &dy),
                    &s,
                );
            }
            let flipped = conv::flip_transpose(&s, &wt);
            close(
                &backward_input(&s, &dy, &wt),
                &conv::forward_im2col(&t, &dy, &flipped, None),
                &s,
            );
        }
    }
}
