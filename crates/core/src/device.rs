//! Devices by name (`cpu`, `cuda`, `cuda:N`), without libtorch: the front plans and assigns
//! devices; only the engine opens them.

use std::fmt;

/// Where a run trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Device {
    Cpu,
    Cuda(usize),
}

impl Device {
    /// Parse `cpu`, `cuda` (= `cuda:0`) or `cuda:N`.
    pub fn parse(s: &str) -> Result<Device, String> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "cuda" => Ok(Device::Cuda(0)),
            _ => s
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Device::Cuda)
                .ok_or_else(|| format!("unknown device `{s}`: expected cpu, cuda or cuda:N")),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
            Device::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Device;

    #[test]
    fn parses_and_prints() {
        for (s, d) in [("cpu", Device::Cpu), ("cuda:3", Device::Cuda(3))] {
            assert_eq!(Device::parse(s).unwrap(), d);
            assert_eq!(d.to_string(), s);
        }
        assert_eq!(Device::parse("cuda").unwrap(), Device::Cuda(0));
        assert_eq!(
            Device::parse("tpu").unwrap_err(),
            "unknown device `tpu`: expected cpu, cuda or cuda:N"
        );
    }
}
