//! Resource quantities as OpenFaaS and Kubernetes write them: memory (`"128Mi"`, `"1G"`, `"1048576"`) and CPU
//! (`"0.5"`, `"500m"`).

/// Bytes in a memory quantity: a number with an optional binary (`Ki`, `Mi`, `Gi`, `Ti`) or decimal (`k`, `K`, `M`,
/// `G`, `T`) suffix.
pub fn memory_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number.parse().map_err(|_| format!("{text:?} is not a memory quantity such as 128Mi"))?;
    let factor: f64 = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        "k" | "K" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        other => return Err(format!("unknown memory unit {other:?} in {text:?}; use Ki, Mi, Gi, K, M or G")),
    };
    let bytes = number * factor;
    // Docker refuses limits under 6 MiB; saying so here beats a failed container start later.
    if bytes < 6.0 * 1024.0 * 1024.0 {
        return Err(format!("{text:?} is below the 6Mi a container needs"));
    }
    Ok(bytes as u64)
}

/// Billionths of a CPU in a CPU quantity: cores (`"0.5"`, `"2"`) or millicores (`"500m"`).
pub fn nano_cpus(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, scale) = match text.strip_suffix('m') {
        Some(milli) => (milli, 1e6),
        None => (text, 1e9),
    };
    let value: f64 = number.parse().map_err(|_| format!("{text:?} is not a CPU quantity such as 0.5 or 500m"))?;
    let nanos = value * scale;
    if !nanos.is_finite() || nanos < 1e7 {
        return Err(format!("{text:?} is below the 0.01 CPU a container can be given"));
    }
    if nanos > 1024e9 {
        return Err(format!("{text:?} is more than the 1024 CPUs a container can be given"));
    }
    Ok(nanos as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_units() {
        assert_eq!(memory_bytes("128Mi").unwrap(), 128 << 20);
        assert_eq!(memory_bytes("1Gi").unwrap(), 1 << 30);
        assert_eq!(memory_bytes("64M").unwrap(), 64_000_000);
        assert_eq!(memory_bytes("10485760").unwrap(), 10 << 20);
        assert!(memory_bytes("12Xi").unwrap_err().contains("unknown memory unit"));
        assert!(memory_bytes("1Ki").unwrap_err().contains("6Mi"));
        assert!(memory_bytes("lots").is_err());
    }

    #[test]
    fn cpu_units() {
        assert_eq!(nano_cpus("0.5").unwrap(), 500_000_000);
        assert_eq!(nano_cpus("250m").unwrap(), 250_000_000);
        assert_eq!(nano_cpus("2").unwrap(), 2_000_000_000);
        assert!(nano_cpus("1m").is_err());
        assert!(nano_cpus("half").is_err());
    }
}
