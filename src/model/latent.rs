//! How autoencoder latents are brought to zero mean and unit variance before diffusion, and back.
//! The noise the diffusion adds is the same size on every channel, so a channel with a small
//! spread (or far from zero) would be drowned early and learned poorly; normalising each channel
//! on its own gives every channel the same footing. Older models used one global scale.

use burn::tensor::{Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::Autoencoder;
use crate::model::rolls_to_tensor;
use crate::roll::Roll;

/// Per-channel shift and scale: diffusion sees (z − mean) · scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatentNorm {
    pub mean: Vec<f32>,
    pub scale: Vec<f32>,
}

impl LatentNorm {
    /// One scale for every channel, no shift: how models before per-channel statistics worked.
    pub fn global(channels: usize, scale: f32) -> Self {
        LatentNorm {
            mean: vec![0.0; channels],
            scale: vec![scale; channels],
        }
    }

    /// Measures the per-channel mean and 1 / standard deviation of `windows`' latents.
    pub fn measure(ae: &Autoencoder, windows: &[Roll], device: &burn::tensor::Device) -> Self {
        let mut stats: Vec<(f64, f64, f64)> = Vec::new();
        for chunk in windows.chunks(32) {
            let refs: Vec<&Roll> = chunk.iter().collect();
            let z = ae.encode(rolls_to_tensor(&refs, device));
            let [b, c, h, w] = z.dims();
            let values: Vec<f32> = z
                .into_data()
                .convert::<f32>()
                .try_to_vec::<f32>()
                .expect("converted to f32");
            stats.resize(c, (0.0, 0.0, 0.0));
            for (i, v) in values.iter().enumerate() {
                let s = &mut stats[(i / (h * w)) % c];
                s.0 += f64::from(*v);
                s.1 += f64::from(*v) * f64::from(*v);
                s.2 += 1.0;
            }
            debug_assert_eq!(values.len(), b * c * h * w);
        }
        let (mean, scale) = stats
            .iter()
            .map(|&(sum, sum_sq, n)| {
                let mean = sum / n.max(1.0);
                let var = (sum_sq / n.max(1.0) - mean * mean).max(1e-8);
                (mean as f32, (1.0 / var.sqrt()) as f32)
            })
            .unzip();
        LatentNorm { mean, scale }
    }

    fn per_channel(values: &[f32], like: &Tensor<4>) -> Tensor<4> {
        Tensor::from_data(
            TensorData::new(values.to_vec(), [1, values.len(), 1, 1]),
            &like.device(),
        )
    }

    /// Encoder latents → what the diffusion model works on.
    pub fn normalize(&self, z: Tensor<4>) -> Tensor<4> {
        let mean = Self::per_channel(&self.mean, &z);
        let scale = Self::per_channel(&self.scale, &z);
        (z - mean) * scale
    }

    /// What the diffusion model made → latents the decoder takes.
    pub fn denormalize(&self, z: Tensor<4>) -> Tensor<4> {
        let mean = Self::per_channel(&self.mean, &z);
        let scale = Self::per_channel(&self.scale, &z);
        z / scale + mean
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    #[test]
    fn normalize_then_denormalize_is_the_identity() {
        let device = Device::flex();
        let norm = LatentNorm {
            mean: vec![0.5, -2.0],
            scale: vec![4.0, 0.25],
        };
        let z = Tensor::<4>::from_data(
            TensorData::new(
                vec![1.0f32, 2.0, 3.0, 4.0, -1.0, 0.0, 1.0, 10.0],
                [1, 2, 2, 2],
            ),
            &device,
        );
        let n: Vec<f32> = norm.normalize(z.clone()).into_data().try_to_vec().unwrap();
        assert_eq!(&n[..4], &[2.0, 6.0, 10.0, 14.0]);
        assert_eq!(&n[4..], &[0.25, 0.5, 0.75, 3.0]);
        let back: Vec<f32> = norm
            .denormalize(norm.normalize(z.clone()))
            .into_data()
            .try_to_vec()
            .unwrap();
        let orig: Vec<f32> = z.into_data().try_to_vec().unwrap();
        for (a, b) in back.iter().zip(&orig) {
            assert!((a - b).abs() < 1e-5, "{back:?} vs {orig:?}");
        }
    }

    #[test]
    fn measured_norm_whitens_each_channel() {
        let device = Device::flex();
        let ae = crate::model::init_seeded(&device, 3, |d| {
            crate::model::AutoencoderConfig::new().init(d)
        });
        let rolls: Vec<Roll> = (0..6)
            .map(|i| {
                let notes: Vec<crate::roll::Note> = (0..16)
                    .map(|k| {
                        crate::roll::Note::new(
                            48 + (i * 5 + k * 7) as u8 % 36,
                            k * 8,
                            k * 8 + 6,
                            90,
                        )
                    })
                    .collect();
                Roll::from_notes(&notes, crate::roll::WINDOW_STEPS)
            })
            .collect();
        let norm = LatentNorm::measure(&ae, &rolls, &device);
        let refs: Vec<&Roll> = rolls.iter().collect();
        let z = norm.normalize(ae.encode(rolls_to_tensor(&refs, &device)));
        let [b, c, h, w] = z.dims();
        assert_eq!(norm.mean.len(), c);
        let values: Vec<f32> = z.into_data().try_to_vec().unwrap();
        let n = (b * h * w) as f64;
        for ch in 0..c {
            let of_channel = values
                .iter()
                .enumerate()
                .filter(|(i, _)| (i / (h * w)) % c == ch)
                .map(|(_, v)| f64::from(*v));
            let (sum, sum_sq) = of_channel.fold((0.0, 0.0), |(s, q), v| (s + v, q + v * v));
            let mean = sum / n;
            let var = sum_sq / n - mean * mean;
            assert!(mean.abs() < 1e-3, "channel {ch} mean {mean}");
            assert!((var - 1.0).abs() < 1e-2, "channel {ch} variance {var}");
        }
        // Channels of a random encoder differ: one global scale could not do this.
        assert!(
            norm.scale
                .iter()
                .any(|s| (s - norm.scale[0]).abs() > 1e-3 * s)
        );
    }

    #[test]
    fn global_norm_is_a_plain_scale() {
        let norm = LatentNorm::global(3, 2.0);
        assert_eq!(norm.mean, vec![0.0; 3]);
        assert_eq!(norm.scale, vec![2.0; 3]);
    }
}
