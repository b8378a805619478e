//! The per-channel loops of [`super::norm`] in AVX-512 (found at run time), SiLU's exponential
//! included.
//!
//! Why: this crate is built at a low optimisation level, where loops are not vectorised, and
//! libm's `expf` is scalar; GroupNorm with SiLU, forward and backward, took a sixth of a
//! training step that way. Sums run in sixteen lanes, so they round differently from a
//! sequential sum, by float noise.

use super::avx512;

/// Mean and (biased) variance of `x`, or `None` without AVX-512.
pub fn mean_and_variance(x: &[f32]) -> Option<(f32, f32)> {
    if !avx512() || x.is_empty() {
        return None;
    }
    // SAFETY: AVX-512F is present (checked above); the kernel reads only within `x`.
    Some(unsafe { imp::mean_and_variance(x) })
}

/// `out = silu?(x · scale + shift)`; `false` (and nothing written) without AVX-512.
pub fn affine(x: &[f32], out: &mut [f32], scale: f32, shift: f32, silu: bool) -> bool {
    if !avx512() {
        return false;
    }
    assert_eq!(x.len(), out.len());
    // SAFETY: as in `mean_and_variance`; `out` is as long as `x`.
    unsafe { imp::affine(x, out, scale, shift, silu) };
    true
}

/// One channel of the backward pass, first half: with `x̂ = (x − mean)·rstd` and
/// `y = x̂·gamma + beta`, writes the gradient before SiLU (`dy · silu'(y)`, or `dy`) into `d0`
/// and returns (Σ d0·x̂, Σ d0); `None` without AVX-512.
#[allow(clippy::too_many_arguments)]
pub fn backward_first(
    x: &[f32],
    dy: &[f32],
    d0: &mut [f32],
    mean: f32,
    rstd: f32,
    gamma: f32,
    beta: f32,
    silu: bool,
) -> Option<(f32, f32)> {
    if !avx512() {
        return None;
    }
    assert!(x.len() == dy.len() && x.len() == d0.len());
    // SAFETY: as in `mean_and_variance`; the three slices have one length.
    Some(unsafe { imp::backward_first(x, dy, d0, [mean, rstd, gamma, beta], silu) })
}

/// Second half: `dx = rstd · (d0 · gamma − m1 − x̂ · m2)` in place of `d0`; `false` without
/// AVX-512.
pub fn backward_second(
    x: &[f32],
    dx: &mut [f32],
    mean: f32,
    rstd: f32,
    gamma: f32,
    m: [f32; 2],
) -> bool {
    if !avx512() {
        return false;
    }
    assert_eq!(x.len(), dx.len());
    // SAFETY: as in `backward_first`.
    unsafe { imp::backward_second(x, dx, [mean, rstd, gamma], m) };
    true
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use std::arch::x86_64::*;

    const LANES: usize = 16;

    /// Lanes of the chunk at `i` of a run of `n`: all sixteen, or the tail's.
    fn mask(n: usize, i: usize) -> __mmask16 {
        let left = n - i;
        if left >= LANES {
            !0
        } else {
            (1u16 << left) - 1
        }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn load(x: &[f32], i: usize, k: __mmask16) -> __m512 {
        // SAFETY: the mask covers only elements `i..` that `x` holds.
        unsafe { _mm512_maskz_loadu_ps(k, x.as_ptr().wrapping_add(i)) }
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn store(out: &mut [f32], i: usize, k: __mmask16, v: __m512) {
        // SAFETY: as in `load`.
        unsafe { _mm512_mask_storeu_ps(out.as_mut_ptr().wrapping_add(i), k, v) }
    }

    /// `e^x` to about 2 ulp over the range where f32 neither overflows nor flushes to 0
    /// (Cephes' `expf` polynomial on `x − n·ln 2`, then `·2ⁿ` by `vscalefps`).
    #[target_feature(enable = "avx512f")]
    fn exp(x: __m512) -> __m512 {
        let x = _mm512_min_ps(
            _mm512_max_ps(x, _mm512_set1_ps(-87.3)),
            _mm512_set1_ps(88.7),
        );
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
        );
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_359_4), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), r);
        let mut p = _mm512_set1_ps(1.987_569_1e-4);
        for c in [
            1.398_2e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            1.666_666_5e-1,
            0.5,
        ] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
        }
        let p = _mm512_fmadd_ps(
            p,
            _mm512_mul_ps(r, r),
            _mm512_add_ps(r, _mm512_set1_ps(1.0)),
        );
        _mm512_scalef_ps(p, n)
    }

    #[target_feature(enable = "avx512f")]
    fn sigmoid(y: __m512) -> __m512 {
        let one = _mm512_set1_ps(1.0);
        _mm512_div_ps(
            one,
            _mm512_add_ps(one, exp(_mm512_sub_ps(_mm512_setzero_ps(), y))),
        )
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn mean_and_variance(x: &[f32]) -> (f32, f32) {
        let n = x.len();
        let mut sum = _mm512_setzero_ps();
        let mut i = 0;
        while i < n {
            // SAFETY: masked to `x`.
            sum = _mm512_add_ps(sum, unsafe { load(x, i, mask(n, i)) });
            i += LANES;
        }
        let mean = _mm512_reduce_add_ps(sum) / n as f32;
        let m = _mm512_set1_ps(mean);
        let mut sq = _mm512_setzero_ps();
        let mut i = 0;
        while i < n {
            let k = mask(n, i);
            // SAFETY: masked to `x`; masked-off lanes are 0 and stay out of the sum.
            let d = _mm512_maskz_sub_ps(k, unsafe { load(x, i, k) }, m);
            sq = _mm512_fmadd_ps(d, d, sq);
            i += LANES;
        }
        (mean, _mm512_reduce_add_ps(sq) / n as f32)
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn affine(x: &[f32], out: &mut [f32], scale: f32, shift: f32, silu: bool) {
        let (a, b) = (_mm512_set1_ps(scale), _mm512_set1_ps(shift));
        let n = x.len();
        let mut i = 0;
        while i < n {
            let k = mask(n, i);
            // SAFETY: masked to `x` and `out`, which have one length.
            let y = _mm512_fmadd_ps(unsafe { load(x, i, k) }, a, b);
            let y = if silu {
                _mm512_mul_ps(y, sigmoid(y))
            } else {
                y
            };
            unsafe { store(out, i, k, y) };
            i += LANES;
        }
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn backward_first(
        x: &[f32],
        dy: &[f32],
        d0: &mut [f32],
        [mean, rstd, gamma, beta]: [f32; 4],
        silu: bool,
    ) -> (f32, f32) {
        let (m, r) = (_mm512_set1_ps(mean), _mm512_set1_ps(rstd));
        let (g, b, one) = (
            _mm512_set1_ps(gamma),
            _mm512_set1_ps(beta),
            _mm512_set1_ps(1.0),
        );
        let (mut dgamma, mut dbeta) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let n = x.len();
        let mut i = 0;
        while i < n {
            let k = mask(n, i);
            // SAFETY: masked to the slices, which have one length; masked-off lanes load 0,
            // so their d0 is 0 and adds nothing.
            let (xv, d) = unsafe { (load(x, i, k), load(dy, i, k)) };
            let xhat = _mm512_mul_ps(_mm512_sub_ps(xv, m), r);
            let d = if silu {
                let y = _mm512_fmadd_ps(xhat, g, b);
                let s = sigmoid(y);
                // silu'(y) = s · (1 + y · (1 − s))
                let grad = _mm512_mul_ps(s, _mm512_fmadd_ps(y, _mm512_sub_ps(one, s), one));
                _mm512_mul_ps(d, grad)
            } else {
                d
            };
            dbeta = _mm512_add_ps(dbeta, d);
            dgamma = _mm512_fmadd_ps(d, xhat, dgamma);
            unsafe { store(d0, i, k, d) };
            i += LANES;
        }
        (_mm512_reduce_add_ps(dgamma), _mm512_reduce_add_ps(dbeta))
    }

    #[target_feature(enable = "avx512f")]
    pub unsafe fn backward_second(
        x: &[f32],
        dx: &mut [f32],
        [mean, rstd, gamma]: [f32; 3],
        [m1, m2]: [f32; 2],
    ) {
        let (m, r, g) = (
            _mm512_set1_ps(mean),
            _mm512_set1_ps(rstd),
            _mm512_set1_ps(gamma),
        );
        let (m1, m2) = (_mm512_set1_ps(m1), _mm512_set1_ps(m2));
        let n = x.len();
        let mut i = 0;
        while i < n {
            let k = mask(n, i);
            // SAFETY: masked to the slices, which have one length.
            let (xv, d) = unsafe { (load(x, i, k), load(dx, i, k)) };
            let xhat = _mm512_mul_ps(_mm512_sub_ps(xv, m), r);
            let v = _mm512_fmsub_ps(d, g, _mm512_fmadd_ps(xhat, m2, m1));
            unsafe { store(dx, i, k, _mm512_mul_ps(r, v)) };
            i += LANES;
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod imp {
    pub unsafe fn mean_and_variance(_: &[f32]) -> (f32, f32) {
        unreachable!("avx512() is false off x86-64")
    }
    pub unsafe fn affine(_: &[f32], _: &mut [f32], _: f32, _: f32, _: bool) {
        unreachable!("avx512() is false off x86-64")
    }
    pub unsafe fn backward_first(
        _: &[f32],
        _: &[f32],
        _: &mut [f32],
        _: [f32; 4],
        _: bool,
    ) -> (f32, f32) {
        unreachable!("avx512() is false off x86-64")
    }
    pub unsafe fn backward_second(_: &[f32], _: &mut [f32], _: [f32; 3], _: [f32; 2]) {
        unreachable!("avx512() is false off x86-64")
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_values;
    use super::*;

    /// Values in [−4, 4].
    fn values(len: usize, seed: u32) -> Vec<f32> {
        test_values(len, seed).iter().map(|v| 4.0 * v).collect()
    }

    fn silu(y: f32) -> f32 {
        y / (1.0 + (-y).exp())
    }

    #[test]
    fn agrees_with_scalar_loops() {
        if !avx512() {
            return;
        }
        for n in [1, 5, 16, 17, 64, 100, 1024] {
            let x = values(n, 1);
            let dy = values(n, 2);
            let (mean, var) = mean_and_variance(&x).expect("AVX-512");
            let m0 = x.iter().sum::<f32>() / n as f32;
            let v0 = x.iter().map(|v| (v - m0) * (v - m0)).sum::<f32>() / n as f32;
            assert!((mean - m0).abs() < 1e-4 && (var - v0).abs() < 1e-4 * v0.max(1.0));
            let mut out = vec![0.0; n];
            assert!(affine(&x, &mut out, 1.3, -0.2, true));
            for (o, v) in out.iter().zip(&x) {
                let want = silu(v * 1.3 - 0.2);
                assert!(
                    (o - want).abs() <= 1e-5 * want.abs().max(1.0),
                    "{o} vs {want}"
                );
            }
            let (rstd, g, b) = (0.7, 1.1, 0.3);
            let mut d0 = vec![0.0; n];
            let (dgamma, dbeta) =
                backward_first(&x, &dy, &mut d0, mean, rstd, g, b, true).expect("AVX-512");
            let (mut eg, mut eb) = (0.0f32, 0.0f32);
            for ((v, d), got) in x.iter().zip(&dy).zip(&d0) {
                let xhat = (v - mean) * rstd;
                let y = xhat * g + b;
                let s = 1.0 / (1.0 + (-y).exp());
                let want = d * s * (1.0 + y * (1.0 - s));
                assert!((got - want).abs() <= 1e-5 * want.abs().max(1.0));
                eg += want * xhat;
                eb += want;
            }
            assert!((dgamma - eg).abs() < 1e-3 && (dbeta - eb).abs() < 1e-3);
            let mut dx = d0.clone();
            assert!(backward_second(&x, &mut dx, mean, rstd, g, [0.1, -0.2]));
            for ((v, d), got) in x.iter().zip(&d0).zip(&dx) {
                let xhat = (v - mean) * rstd;
                let want = rstd * (d * g - 0.1 + xhat * 0.2);
                assert!((got - want).abs() <= 1e-5 * want.abs().max(1.0));
            }
        }
    }
}
