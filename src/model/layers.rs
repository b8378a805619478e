//! Building blocks shared by the autoencoder and the UNet.

use burn::module::Module;
use burn::nn::attention::{MhaInput, MultiHeadAttention, MultiHeadAttentionConfig};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{GroupNorm, GroupNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::silu;
use burn::tensor::{Device, Tensor};

/// A convolution layer's forward pass through [`crate::kernels`]: our CPU kernels where they
/// apply, burn's own op otherwise. Same parameters, so saved weights load unchanged.
pub trait ConvApply {
    fn apply(&self, x: Tensor<4>) -> Tensor<4>;
}

impl ConvApply for Conv2d {
    fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        crate::kernels::conv2d_layer(self, x)
    }
}

/// GroupNorm (and SiLU) through [`crate::kernels`].
pub trait NormApply {
    fn norm_silu(&self, x: Tensor<4>) -> Tensor<4>;
}

impl NormApply for GroupNorm {
    fn norm_silu(&self, x: Tensor<4>) -> Tensor<4> {
        crate::kernels::group_norm(self, x, true)
    }
}

/// Group count for GroupNorm: 8, or fewer when the channels do not divide.
fn groups(channels: usize) -> usize {
    (1..=8)
        .rev()
        .find(|g| channels.is_multiple_of(*g))
        .unwrap_or(1)
}

pub fn norm(channels: usize, device: &Device) -> GroupNorm {
    GroupNormConfig::new(groups(channels), channels).init(device)
}

pub fn conv3(c_in: usize, c_out: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], [3, 3])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device)
}

pub fn conv1(c_in: usize, c_out: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], [1, 1]).init(device)
}

/// Halves height and width with a strided 3×3 convolution.
pub fn downsample(c_in: usize, c_out: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], [3, 3])
        .with_stride([2, 2])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device)
}

/// [B, C, H, W] → [B, C·r², H/r, W/r]: each r×r patch becomes channels.
pub fn fold(x: Tensor<4>, r: usize) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h / r, r, w / r, r])
        .permute([0, 1, 3, 5, 2, 4])
        .reshape([b, c * r * r, h / r, w / r])
}

/// Nearest-neighbour ×2 upsampling by repeating rows and columns.
pub fn upsample2(x: Tensor<4>) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    x.reshape([b, c, h, 1, w, 1])
        .repeat_dim(3, 2)
        .repeat_dim(5, 2)
        .reshape([b, c, h * 2, w * 2])
}

/// Pre-activation residual block, optionally shifted by a conditioning embedding.
#[derive(Module, Debug)]
pub struct ResBlock {
    norm1: GroupNorm,
    conv1: Conv2d,
    emb: Option<Linear>,
    norm2: GroupNorm,
    conv2: Conv2d,
    skip: Option<Conv2d>,
}

impl ResBlock {
    pub fn new(c_in: usize, c_out: usize, emb_dim: Option<usize>, device: &Device) -> Self {
        ResBlock {
            norm1: norm(c_in, device),
            conv1: conv3(c_in, c_out, device),
            emb: emb_dim.map(|d| LinearConfig::new(d, c_out).init(device)),
            norm2: norm(c_out, device),
            conv2: conv3(c_out, c_out, device),
            skip: (c_in != c_out).then(|| conv1(c_in, c_out, device)),
        }
    }

    pub fn forward(&self, x: Tensor<4>, emb: Option<&Tensor<2>>) -> Tensor<4> {
        let mut h = self.conv1.apply(self.norm1.norm_silu(x.clone()));
        if let (Some(layer), Some(e)) = (&self.emb, emb) {
            let [b, c] = [h.dims()[0], h.dims()[1]];
            h = h + layer.forward(silu(e.clone())).reshape([b, c, 1, 1]);
        }
        let h = self.conv2.apply(self.norm2.norm_silu(h));
        let skip = match &self.skip {
            Some(conv) => conv.apply(x),
            None => x,
        };
        h + skip
    }
}

/// Self-attention over all positions of a feature map, with a residual connection.
#[derive(Module, Debug)]
pub struct Attention {
    norm: GroupNorm,
    mha: MultiHeadAttention,
}

impl Attention {
    pub fn new(channels: usize, heads: usize, device: &Device) -> Self {
        Attention {
            norm: norm(channels, device),
            mha: MultiHeadAttentionConfig::new(channels, heads)
                .with_dropout(0.0)
                .init(device),
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let tokens = crate::kernels::group_norm(&self.norm, x.clone(), false)
            .reshape([b, c, h * w])
            .swap_dims(1, 2);
        let out = self.mha.forward(MhaInput::self_attn(tokens)).context;
        x + out.swap_dims(1, 2).reshape([b, c, h, w])
    }
}

/// Multiply-adds ×2 of a k×k convolution producing an `h`×`w` map.
pub fn conv_flops(k: usize, c_in: usize, c_out: usize, h: usize, w: usize) -> u64 {
    2 * (k * k * c_in * c_out * h * w) as u64
}

/// FLOPs of a [`ResBlock`] at `h`×`w`.
pub fn res_block_flops(c_in: usize, c_out: usize, h: usize, w: usize) -> u64 {
    let skip = if c_in != c_out {
        conv_flops(1, c_in, c_out, h, w)
    } else {
        0
    };
    conv_flops(3, c_in, c_out, h, w) + conv_flops(3, c_out, c_out, h, w) + skip
}

/// FLOPs of an [`Attention`] block over `n` positions of `c` channels.
pub fn attention_flops(c: usize, n: usize) -> u64 {
    // q, k, v and output projections, then scores and their weighted sum.
    (4 * 2 * n * c * c + 2 * 2 * n * n * c) as u64
}
