//! The denoising UNet over latents: timestep and style embeddings added to every residual
//! block, self-attention at the lower resolutions, v-prediction output.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::{Embedding, EmbeddingConfig, GroupNorm, Linear, LinearConfig};
use burn::tensor::activation::silu;
use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::roll::Style;

use super::layers::{
    Attention, ConvApply, NormApply, ResBlock, attention_flops, conv_flops, conv3, downsample,
    norm, res_block_flops, upsample2,
};

#[derive(Config, Debug, PartialEq)]
pub struct UNetConfig {
    #[config(default = 8)]
    pub latent_channels: usize,
    /// Channels at the latent's own resolution (32×32). Thin there, wide below: a 3×3 conv
    /// costs H·W·C², so 32 channels at 32×32 cost what 64 did at 16×16.
    #[config(default = 32)]
    pub base_channels: usize,
    /// Channel multiplier per resolution; each further entry halves height and width.
    #[config(default = "vec![1, 2, 4, 4]")]
    pub channel_mult: Vec<usize>,
    /// Self-attention at each resolution (8×8 and 4×4; the middle block always has it).
    #[config(default = "vec![false, false, true, true]")]
    pub attention: Vec<bool>,
    #[config(default = 1)]
    pub res_blocks: usize,
    #[config(default = 4)]
    pub heads: usize,
    /// Style labels; one more embedding row is the "no style" label for guidance.
    #[config(default = 4)]
    pub styles: usize,
}

/// One residual block, with attention after it where the resolution asks.
#[derive(Module, Debug)]
struct Stage {
    block: ResBlock,
    attn: Option<Attention>,
}

impl Stage {
    fn new(c_in: usize, c_out: usize, emb: usize, attn: bool, heads: usize, d: &Device) -> Self {
        Stage {
            block: ResBlock::new(c_in, c_out, Some(emb), d),
            attn: attn.then(|| Attention::new(c_out, heads, d)),
        }
    }

    fn forward(&self, x: Tensor<4>, emb: &Tensor<2>) -> Tensor<4> {
        let h = self.block.forward(x, Some(emb));
        match &self.attn {
            Some(a) => a.forward(h),
            None => h,
        }
    }
}

#[derive(Module, Debug)]
pub struct UNet {
    base: usize,
    time1: Linear,
    time2: Linear,
    style: Embedding,
    conv_in: Conv2d,
    /// Per resolution: `res_blocks` stages.
    down: Vec<Vec<Stage>>,
    /// Strided convolutions between resolutions.
    downsamplers: Vec<Conv2d>,
    mid1: Stage,
    mid2: Stage,
    /// Per resolution, lowest first: `res_blocks + 1` stages taking skip connections.
    up: Vec<Vec<Stage>>,
    /// Convolutions after each ×2 upsampling.
    upsamplers: Vec<Conv2d>,
    norm_out: GroupNorm,
    conv_out: Conv2d,
}

impl UNetConfig {
    /// Why this configuration cannot build a UNet over latents of `side`×`side`, if it
    /// cannot: what a card written by hand or damaged would otherwise make panic while the
    /// model is built or run.
    pub fn check(&self, side: usize) -> Result<(), String> {
        let levels = self.channel_mult.len();
        if self.base_channels == 0
            || self.latent_channels == 0
            || levels == 0
            || self.channel_mult.contains(&0)
        {
            return Err(format!(
                "UNet base channels {}, latent channels {}, channel multipliers {:?}: at least \
                 one resolution, every count above 0",
                self.base_channels, self.latent_channels, self.channel_mult
            ));
        }
        if self.attention.len() != levels {
            return Err(format!(
                "UNet attention {:?}: one flag per resolution ({levels})",
                self.attention
            ));
        }
        let halvings = u32::try_from(levels - 1).unwrap_or(u32::MAX);
        if 1usize
            .checked_shl(halvings)
            .is_none_or(|scale| scale > side || !side.is_multiple_of(scale))
        {
            return Err(format!(
                "UNet with {levels} resolutions: the {side}×{side} latent cannot be halved \
                 {} times",
                levels - 1
            ));
        }
        let last = self.channel_mult[levels - 1] * self.base_channels;
        let attended = self
            .channel_mult
            .iter()
            .zip(&self.attention)
            .filter(|(_, a)| **a)
            .map(|(m, _)| m * self.base_channels)
            .chain([last]);
        for channels in attended {
            if self.heads == 0 || channels % self.heads != 0 {
                return Err(format!(
                    "UNet attention heads {}: must divide the {channels} channels they attend over",
                    self.heads
                ));
            }
        }
        if self.styles != Style::ALL.len() {
            return Err(format!(
                "UNet styles {}: diffroll's styles are {}",
                self.styles,
                Style::ALL.len()
            ));
        }
        Ok(())
    }

    /// FLOPs of one forward pass for one `h`×`w` latent (convolutions and attention),
    /// following the same construction as [`UNetConfig::init`].
    pub fn flops(&self, h: usize, w: usize) -> u64 {
        let base = self.base_channels;
        let chans: Vec<usize> = self.channel_mult.iter().map(|m| m * base).collect();
        let stage = |c_in: usize, c_out: usize, attn: bool, h: usize, w: usize| {
            res_block_flops(c_in, c_out, h, w)
                + if attn {
                    attention_flops(c_out, h * w)
                } else {
                    0
                }
        };
        let mut total = conv_flops(3, self.latent_channels, base, h, w);
        let (mut h, mut w) = (h, w);
        let mut skips = vec![base];
        let mut c = base;
        for (level, &c_out) in chans.iter().enumerate() {
            for _ in 0..self.res_blocks {
                total += stage(c, c_out, self.attention[level], h, w);
                c = c_out;
                skips.push(c);
            }
            if level + 1 < chans.len() {
                h /= 2;
                w /= 2;
                total += conv_flops(3, c, c, h, w);
                skips.push(c);
            }
        }
        total += stage(c, c, true, h, w) + stage(c, c, false, h, w);
        for (level, &c_out) in chans.iter().enumerate().rev() {
            for _ in 0..=self.res_blocks {
                let skip = skips.pop().unwrap_or(0);
                total += stage(c + skip, c_out, self.attention[level], h, w);
                c = c_out;
            }
            if level > 0 {
                h *= 2;
                w *= 2;
                total += conv_flops(3, c, c, h, w);
            }
        }
        total + conv_flops(3, c, self.latent_channels, h, w)
    }

    pub fn init(&self, device: &Device) -> UNet {
        assert_eq!(self.channel_mult.len(), self.attention.len());
        let base = self.base_channels;
        let emb = base * 4;
        let chans: Vec<usize> = self.channel_mult.iter().map(|m| m * base).collect();
        let levels = chans.len();
        let mut down = Vec::new();
        let mut downsamplers = Vec::new();
        // Channels of every skip connection, in the order they are pushed.
        let mut skips = vec![base];
        let mut c = base;
        for (level, &c_out) in chans.iter().enumerate() {
            let mut stages = Vec::new();
            for _ in 0..self.res_blocks {
                stages.push(Stage::new(
                    c,
                    c_out,
                    emb,
                    self.attention[level],
                    self.heads,
                    device,
                ));
                c = c_out;
                skips.push(c);
            }
            down.push(stages);
            if level + 1 < levels {
                downsamplers.push(downsample(c, c, device));
                skips.push(c);
            }
        }
        let mid1 = Stage::new(c, c, emb, true, self.heads, device);
        let mid2 = Stage::new(c, c, emb, false, self.heads, device);
        let mut up = Vec::new();
        let mut upsamplers = Vec::new();
        for (level, &c_out) in chans.iter().enumerate().rev() {
            let mut stages = Vec::new();
            for _ in 0..=self.res_blocks {
                let skip = skips.pop().expect("one skip per stage");
                stages.push(Stage::new(
                    c + skip,
                    c_out,
                    emb,
                    self.attention[level],
                    self.heads,
                    device,
                ));
                c = c_out;
            }
            up.push(stages);
            if level > 0 {
                upsamplers.push(conv3(c, c, device));
            }
        }
        UNet {
            base,
            time1: LinearConfig::new(base, emb).init(device),
            time2: LinearConfig::new(emb, emb).init(device),
            style: EmbeddingConfig::new(self.styles + 1, emb).init(device),
            conv_in: conv3(self.latent_channels, base, device),
            down,
            downsamplers,
            mid1,
            mid2,
            up,
            upsamplers,
            norm_out: norm(c, device),
            conv_out: conv3(c, self.latent_channels, device),
        }
    }
}

/// Sinusoidal features of the timesteps, [B, dim].
fn timestep_features(t: &[f32], dim: usize, device: &Device) -> Tensor<2> {
    let half = dim / 2;
    let mut v = Vec::with_capacity(t.len() * dim);
    for &ti in t {
        for i in 0..half {
            let freq = (-(10_000f32.ln()) * i as f32 / half as f32).exp();
            v.push((ti * freq).sin());
        }
        for i in 0..half {
            let freq = (-(10_000f32.ln()) * i as f32 / half as f32).exp();
            v.push((ti * freq).cos());
        }
        v.resize(v.len() + dim - 2 * half, 0.0);
    }
    Tensor::from_data(TensorData::new(v, [t.len(), dim]), device)
}

impl UNet {
    /// Predicts v for latents `x` [B, C, H, W] at timesteps `t` (one per sample) with style
    /// labels `style` (`styles` = no style).
    pub fn forward(&self, x: Tensor<4>, t: &[f32], style: Tensor<1, Int>) -> Tensor<4> {
        let device = x.device();
        let b = x.dims()[0];
        let temb = self.time2.forward(silu(
            self.time1.forward(timestep_features(t, self.base, &device)),
        ));
        let semb = self
            .style
            .forward(style.reshape([b, 1]))
            .reshape([b, self.base * 4]);
        let emb = temb + semb;

        let mut h = self.conv_in.apply(x);
        let mut skips = vec![h.clone()];
        for (level, stages) in self.down.iter().enumerate() {
            for stage in stages {
                h = stage.forward(h, &emb);
                skips.push(h.clone());
            }
            if let Some(down) = self.downsamplers.get(level) {
                h = down.apply(h);
                skips.push(h.clone());
            }
        }
        h = self.mid2.forward(self.mid1.forward(h, &emb), &emb);
        for (i, stages) in self.up.iter().enumerate() {
            for stage in stages {
                let skip = skips.pop().expect("skip per stage");
                h = stage.forward(Tensor::cat(vec![h, skip], 1), &emb);
            }
            if let Some(conv) = self.upsamplers.get(i) {
                h = conv.apply(upsample2(h));
            }
        }
        self.conv_out.apply(self.norm_out.norm_silu(h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_that_cannot_be_built_are_refused() {
        assert_eq!(UNetConfig::new().check(32), Ok(()));
        let five = UNetConfig::new()
            .with_channel_mult(vec![1; 5])
            .with_attention(vec![false; 5]);
        assert_eq!(five.check(32), Ok(()), "32 → 2 in four halvings");
        assert!(five.check(8).is_err(), "8 cannot be halved four times");
        let many = UNetConfig::new()
            .with_channel_mult(vec![1; 80])
            .with_attention(vec![false; 80]);
        assert!(many.check(32).is_err());
        for bad in [
            UNetConfig::new().with_attention(vec![true]),
            UNetConfig::new().with_heads(0),
            UNetConfig::new().with_heads(3),
            UNetConfig::new().with_base_channels(0),
            UNetConfig::new()
                .with_channel_mult(vec![])
                .with_attention(vec![]),
            UNetConfig::new().with_styles(2),
        ] {
            assert!(bad.check(32).is_err(), "{bad:?}");
        }
    }
}
