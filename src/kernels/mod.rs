//! CPU kernels of our own for burn's flex backend: 2-D convolution ([`conv`]) and GroupNorm
//! with SiLU ([`norm`]), forward and backward.
//!
//! Owns the choice, per call, between these kernels and burn's own ops: f32 tensors on the
//! flex device (with or without autodiff) take ours through a burn backend extension — for
//! convolutions, groups 1, dilation 1 and symmetric padding smaller than the window; every
//! other case (wgpu, other dtypes, shapes not covered) runs burn's own op unchanged.
//! CPU features are found at run time by gemm, so one binary serves every x86-64 machine.
//!
//! Must not: hold model state, or change what a layer computes — the results equal burn's ops
//! to float rounding (see `tests/kernels.rs`).

mod backend;
pub mod conv;
mod direct;
pub mod norm;
mod vector;

use std::cell::{Cell, RefCell};

use burn::backend::Dispatch;
use burn::nn::conv::Conv2d;
use burn::nn::{GroupNorm, PaddingConfig2d};
use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Device, Tensor};

use backend::CpuKernels;

thread_local! {
    static STOCK: Cell<bool> = const { Cell::new(false) };
    static RECORDED: RefCell<Option<Vec<conv::ConvShape>>> = const { RefCell::new(None) };
}

/// Whether this CPU has AVX-512F, which the direct convolutions and the vector loops of
/// GroupNorm need (std caches the answer).
fn avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Runs `f` on a zeroed-or-stale scratch buffer of `len` floats kept by this thread (a fresh
/// one if the thread's is already in use further up its stack).
fn with_scratch<R>(
    key: &'static std::thread::LocalKey<RefCell<Vec<f32>>>,
    len: usize,
    f: impl FnOnce(&mut [f32]) -> R,
) -> R {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < len {
                buf.resize(len, 0.0);
            }
            f(&mut buf[..len])
        }
        Err(_) => f(&mut vec![0.0; len]),
    })
}

/// Values in [−1, 1] that look random enough for the kernels' tests.
#[cfg(test)]
fn test_values(len: usize, seed: u32) -> Vec<f32> {
    (0..len)
        .map(|i| {
            let v = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 8;
            (v % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}

/// Runs `f` and returns, beside its result, the shape of every convolution it ran on this
/// thread through [`conv2d`] (in call order): what a model asks of the kernels.
pub fn record_shapes<R>(f: impl FnOnce() -> R) -> (R, Vec<conv::ConvShape>) {
    let before = RECORDED.with(|r| r.replace(Some(Vec::new())));
    let out = f();
    let shapes = RECORDED.with(|r| r.replace(before)).unwrap_or_default();
    (out, shapes)
}

/// Runs `f` with burn's own ops (convolutions, GroupNorm, SiLU) on this thread, to compare
/// against (`diffroll bench` reports both; the tests check that both agree).
pub fn with_stock_ops<R>(f: impl FnOnce() -> R) -> R {
    let before = STOCK.with(|s| s.replace(true));
    let out = f();
    STOCK.with(|s| s.set(before));
    out
}

/// The shape of a convolution of `x` by `weight` (the leading padding of each axis).
pub fn shape_of(x: &Tensor<4>, weight: &Tensor<4>, options: &ConvOptions<2>) -> conv::ConvShape {
    let [batch, c_in, h, w] = x.dims();
    let [c_out, _, kh, kw] = weight.dims();
    conv::ConvShape {
        batch,
        c_in,
        h,
        w,
        c_out,
        kh,
        kw,
        stride: options.stride,
        pad: [options.padding[0].0, options.padding[1].0],
    }
}

/// Whether [`conv2d`] would run our kernels for these operands.
pub fn covers(x: &Tensor<4>, weight: &Tensor<4>, options: &ConvOptions<2>) -> bool {
    let symmetric = options.padding.iter().all(|(a, b)| a == b);
    symmetric
        && options.groups == 1
        && options.dilation == [1, 1]
        && weight.dims()[1] == x.dims()[1]
        && shape_of(x, weight, options).is_supported()
        && on_flex_f32(&x.dtype(), &x.device())
        && weight.dtype() == DType::F32
}

fn on_flex_f32(dtype: &DType, device: &Device) -> bool {
    !STOCK.with(Cell::get) && *dtype == DType::F32 && *device == Device::flex()
}

/// `burn::tensor::module::conv2d` with our kernels where [`covers`] says so.
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    options: ConvOptions<2>,
) -> Tensor<4> {
    RECORDED.with(|r| {
        if let Some(shapes) = r.borrow_mut().as_mut() {
            shapes.push(shape_of(&x, &weight, &options));
        }
    });
    if !covers(&x, &weight, &options) {
        return burn::tensor::module::conv2d(x, weight, bias, options);
    }
    let bias = bias.unwrap_or_else(|| Tensor::zeros([weight.dims()[0]], &x.device()));
    let out = <Dispatch as CpuKernels>::fast_conv2d(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        options.stride,
        [options.padding[0].0, options.padding[1].0],
    );
    Tensor::from_dispatch(out)
}

/// `layer.forward(x)`, through [`conv2d`].
pub fn conv2d_layer(layer: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let padding = match layer.padding {
        PaddingConfig2d::Valid => [(0, 0), (0, 0)],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
        // "Same" depends on the input size: burn's layer works it out.
        PaddingConfig2d::Same => return layer.forward(x),
    };
    let options = ConvOptions {
        stride: layer.stride,
        padding,
        dilation: layer.dilation,
        groups: layer.groups,
    };
    conv2d(
        x,
        layer.weight.val(),
        layer.bias.as_ref().map(|b| b.val()),
        options,
    )
}

/// `silu(layer.forward(x))` if `silu`, else `layer.forward(x)`: one pass of ours on flex.
pub fn group_norm(layer: &GroupNorm, x: Tensor<4>, silu: bool) -> Tensor<4> {
    let (Some(gamma), Some(beta)) = (&layer.gamma, &layer.beta) else {
        return stock_group_norm(layer, x, silu);
    };
    let shape = norm::NormShape {
        batch: x.dims()[0],
        channels: x.dims()[1],
        spatial: x.dims()[2] * x.dims()[3],
        groups: layer.num_groups,
        epsilon: layer.epsilon as f32,
        silu,
    };
    if !(layer.affine
        && shape.channels == layer.num_channels
        && shape.is_supported()
        && on_flex_f32(&x.dtype(), &x.device()))
    {
        return stock_group_norm(layer, x, silu);
    }
    let out = <Dispatch as CpuKernels>::fast_group_norm(
        x.into_dispatch(),
        gamma.val().into_dispatch(),
        beta.val().into_dispatch(),
        shape.groups,
        shape.epsilon,
        silu,
    );
    Tensor::from_dispatch(out)
}

fn stock_group_norm(layer: &GroupNorm, x: Tensor<4>, silu: bool) -> Tensor<4> {
    let y = layer.forward(x);
    if silu {
        burn::tensor::activation::silu(y)
    } else {
        y
    }
}
