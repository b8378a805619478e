//! Picks the compute device: burn-wgpu on a real GPU adapter, burn's CPU backend (flex)
//! otherwise, because wgpu on a software adapter such as Mesa's lavapipe is several times
//! slower than flex. `--device cpu|gpu` overrides the choice.

use std::fmt;
use std::str::FromStr;

use burn::tensor::{Device, DeviceKind};
use eframe::wgpu;

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceRequest {
    #[default]
    Auto,
    Cpu,
    Gpu,
}

impl FromStr for DeviceRequest {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(DeviceRequest::Auto),
            "cpu" => Ok(DeviceRequest::Cpu),
            "gpu" | "wgpu" => Ok(DeviceRequest::Gpu),
            _ => Err(format!("unknown device '{s}' (expected auto, cpu or gpu)")),
        }
    }
}

/// The device in use and why, printed at start.
#[derive(Clone)]
pub struct Chosen {
    pub device: Device,
    pub gpu: bool,
    pub description: String,
}

impl fmt::Debug for Chosen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.description)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error(
        "--device gpu: no wgpu adapter found (no Vulkan, Metal or DirectX driver); use --device cpu"
    )]
    NoAdapter,
}

/// A wgpu adapter as seen at start-up.
#[derive(Debug, Clone)]
pub struct AdapterInfo {
    pub name: String,
    pub backend: String,
    /// A software rasterizer (lavapipe, llvmpipe, WARP) rather than a GPU.
    pub software: bool,
}

/// Every adapter wgpu can open here through Vulkan, Metal or DirectX 12 (burn's compute
/// backends; GL adapters cannot run its kernels).
pub fn adapters() -> Vec<AdapterInfo> {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::PRIMARY))
        .into_iter()
        .map(|a| {
            let info = a.get_info();
            AdapterInfo {
                name: info.name.clone(),
                backend: format!("{:?}", info.backend),
                software: matches!(
                    info.device_type,
                    wgpu::DeviceType::Cpu | wgpu::DeviceType::Other
                ),
            }
        })
        .collect()
}

fn cpu() -> Chosen {
    Chosen {
        device: Device::flex(),
        gpu: false,
        description: format!(
            "CPU (burn flex, {} threads{})",
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            simd_level().map_or(String::new(), |l| format!(", {l}"))
        ),
    }
}

/// The widest vector instructions this CPU offers burn's kernels (they pick theirs at run
/// time), so that timings and training wall times quoted in cards and benchmarks say which
/// kind of machine gave them: two cores with AVX-512 and two without are not the same.
fn simd_level() -> Option<&'static str> {
    #[cfg(target_arch = "x86_64")]
    {
        Some(if std::arch::is_x86_feature_detected!("avx512f") {
            "AVX-512"
        } else if std::arch::is_x86_feature_detected!("avx2") {
            "AVX2"
        } else {
            "SSE"
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// Resolves a request to a device.
pub fn choose(request: DeviceRequest) -> Result<Chosen, DeviceError> {
    match request {
        DeviceRequest::Cpu => Ok(cpu()),
        DeviceRequest::Auto => {
            let found = adapters();
            match found.iter().find(|a| !a.software) {
                Some(gpu) => Ok(Chosen {
                    device: Device::wgpu(DeviceKind::DefaultDevice),
                    gpu: true,
                    description: format!("GPU: {} ({}, burn wgpu)", gpu.name, gpu.backend),
                }),
                None => {
                    let mut chosen = cpu();
                    if let Some(soft) = found.first() {
                        chosen.description += &format!("; skipped software adapter {}", soft.name);
                    }
                    Ok(chosen)
                }
            }
        }
        DeviceRequest::Gpu => {
            let found = adapters();
            // Prefer a real GPU, but honour the request on a software adapter too: that is
            // how CI tests the wgpu path.
            let adapter = found
                .iter()
                .find(|a| !a.software)
                .or(found.first())
                .ok_or(DeviceError::NoAdapter)?;
            let kind = if adapter.software {
                DeviceKind::Cpu
            } else {
                DeviceKind::DefaultDevice
            };
            Ok(Chosen {
                device: Device::wgpu(kind),
                gpu: true,
                description: format!(
                    "{}: {} ({}, burn wgpu)",
                    if adapter.software {
                        "software GPU"
                    } else {
                        "GPU"
                    },
                    adapter.name,
                    adapter.backend
                ),
            })
        }
    }
}
