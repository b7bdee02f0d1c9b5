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
                match new_cuda() {
                    Ok(device) => return Ok(device),
                    Err(why) => {
                        let _ =
                            FALLBACK.set(format!("no usable CUDA GPU ({why}): running on the CPU"));
                    }
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
            new_cuda().map_err(|why| Error::Device(format!("no CUDA GPU: {why}")))
        }
        DeviceChoice::Metal => {
            Device::new_metal(0).map_err(|e| Error::Device(format!("no Metal GPU: {e}")))
        }
    }
}

/// Why `--device auto` chose the CPU in a binary built with a GPU backend, once it has: the
/// CLI says it in one line (the library prints nothing).
pub fn auto_fallback_reason() -> Option<&'static str> {
    FALLBACK.get().map(String::as_str)
}

static FALLBACK: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The first CUDA GPU. cudarc, loading the CUDA libraries at run time, panics when one is
/// missing (libcuda.so.1 without a driver): that panic is caught, kept quiet, and becomes the
/// reason, naming the library.
fn new_cuda() -> std::result::Result<Device, String> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(|| Device::new_cuda(0));
    std::panic::set_hook(previous);
    match result {
        Ok(Ok(device)) => Ok(device),
        Ok(Err(e)) => Err(e.to_string()),
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| payload.downcast_ref::<&str>().copied())
                .unwrap_or("the CUDA libraries could not be loaded");
            Err(missing_library(message))
        }
    }
}

/// cudarc's panic message, which lists every file name it tried, in short: the library.
fn missing_library(message: &str) -> String {
    let quoted = message
        .split_once("Unable to dynamically load the \"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(name, _)| name);
    match quoted {
        Some("cuda") => "the NVIDIA driver's libcuda.so.1 cannot be loaded: no driver installed, \
                         or not on LD_LIBRARY_PATH"
            .to_string(),
        Some(name) => format!(
            "the CUDA library lib{name}.so cannot be loaded: install the CUDA runtime, or put \
             its folder on LD_LIBRARY_PATH"
        ),
        None => message.lines().next().unwrap_or(message).to_string(),
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_missing_cuda_library_is_named_in_short() {
        let driver = "Unable to dynamically load the \"cuda\" shared library - searched for \
                      library names: [\"libcuda.so\", \"libcuda.so.1\"]. Ensure that ...";
        let why = super::missing_library(driver);
        assert!(
            why.contains("libcuda.so.1") && why.contains("no driver"),
            "{why}"
        );
        assert!(!why.contains("searched"), "{why}");
        let blas = super::missing_library(
            "Unable to dynamically load the \"cublas\" shared library - ...",
        );
        assert!(blas.contains("libcublas.so"), "{blas}");
        assert_eq!(super::missing_library("other\nmore"), "other");
    }
}
