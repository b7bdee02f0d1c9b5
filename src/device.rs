//! Which device runs the models: the CPU, or a GPU when the binary was built with one.

use candle_core::Device;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum DeviceChoice {
    /// A GPU when this binary was built with one and it is present, else the CPU.
    #[default]
    Auto,
    Cpu,
    Cuda,
    Metal,
}

pub fn select(choice: DeviceChoice) -> Result<Device> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => {
            if cfg!(feature = "cuda") {
                if let Ok(device) = Device::new_cuda(0) {
                    return Ok(device);
                }
            }
            if cfg!(feature = "metal") {
                if let Ok(device) = Device::new_metal(0) {
                    return Ok(device);
                }
            }
            Ok(Device::Cpu)
        }
        DeviceChoice::Cuda if !cfg!(feature = "cuda") => Err(Error::Device(
            "this imgsim was built without CUDA; rebuild with `cargo install --features cuda`"
                .into(),
        )),
        DeviceChoice::Metal if !cfg!(feature = "metal") => Err(Error::Device(
            "this imgsim was built without Metal; rebuild with `cargo install --features metal`"
                .into(),
        )),
        DeviceChoice::Cuda => {
            Device::new_cuda(0).map_err(|e| Error::Device(format!("no CUDA GPU: {e}")))
        }
        DeviceChoice::Metal => {
            Device::new_metal(0).map_err(|e| Error::Device(format!("no Metal GPU: {e}")))
        }
    }
}

/// A short name for reports.
pub fn describe(device: &Device) -> &'static str {
    match device {
        Device::Cpu => "cpu",
        Device::Cuda(_) => "cuda",
        Device::Metal(_) => "metal",
    }
}
