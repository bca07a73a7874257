//! Compute sizes: the descriptor's t-shirt sizes and Kubernetes quantities.
//!
//! Everything is computed in integers (milli-cores, bytes) so that placement and the generated
//! Kubernetes requests agree exactly; like Kubernetes, fractions are rounded *up*.

use serde::{Deserialize, Serialize};
use std::fmt;

/// What one replica of a service needs; the unit placement and the generated manifests work in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Resources {
    /// CPU in thousandths of a core (Kubernetes `m`).
    pub cpu_millis: u64,
    /// Memory (RAM) in bytes.
    pub memory_bytes: u64,
    /// Ephemeral/persistent storage in bytes.
    pub storage_bytes: u64,
    /// Whether the replica needs a cluster with accelerators.
    pub gpu: bool,
}

/// Why a string is not a Kubernetes quantity; the message is shown to users as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct QuantityError(String);

/// Longest quantity string accepted: Kubernetes itself rejects far shorter ones in practice,
/// and a bound keeps the integer arithmetic below trivially safe.
const MAX_QUANTITY_LEN: usize = 64;

/// A parsed, non-negative Kubernetes quantity `digits × 10^exp10 × multiplier`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Quantity {
    digits: u128,
    exp10: i32,
    multiplier: u128,
}

impl Quantity {
    /// `ceil(self × scale)` as u64, or an error when it does not fit.
    fn scaled_ceil(self, scale: u128) -> Result<u64, QuantityError> {
        let value = self.scaled_ceil_wide(scale)?;
        u64::try_from(value).map_err(|_| QuantityError("value is too large".to_string()))
    }

    /// `ceil(self × scale)`, or an error when it exceeds u128.
    fn scaled_ceil_wide(self, scale: u128) -> Result<u128, QuantityError> {
        let too_large = || QuantityError("value is too large".to_string());
        let base = self
            .digits
            .checked_mul(self.multiplier)
            .and_then(|v| v.checked_mul(scale))
            .ok_or_else(too_large)?;
        let value = if self.exp10 >= 0 {
            let factor = 10u128
                .checked_pow(self.exp10.unsigned_abs())
                .ok_or_else(too_large)?;
            base.checked_mul(factor).ok_or_else(too_large)?
        } else {
            match 10u128.checked_pow(self.exp10.unsigned_abs()) {
                Some(divisor) => base.div_ceil(divisor),
                // 10^39 and beyond exceed u128: any non-zero base rounds up to 1.
                None => u128::from(base > 0),
            }
        };
        Ok(value)
    }
}

/// Whether two Kubernetes quantities are the same amount (`1000m` and `1`, `1Gi` and
/// `1073741824`, `0.5` and `500m`), compared as an API server stores them: in units of 10⁻⁹,
/// rounded up. Text that is no quantity is compared as text.
pub fn same_quantity(a: &str, b: &str) -> bool {
    let nanos = |q: &str| parse_quantity(q).and_then(|q| q.scaled_ceil_wide(1_000_000_000));
    match (nanos(a), nanos(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Parses a Kubernetes quantity (`250m`, `2`, `1.5Gi`, `1e3`, `10G`); negative values are refused
/// because no request can be negative.
fn parse_quantity(input: &str) -> Result<Quantity, QuantityError> {
    let err = |m: &str| Err(QuantityError(m.to_string()));
    if input.is_empty() {
        return err("empty quantity");
    }
    if input.len() > MAX_QUANTITY_LEN {
        return err("quantity is too long");
    }
    let bytes = input.as_bytes();
    let mut i = 0;
    match bytes.first() {
        Some(b'-') => return err("quantity must not be negative"),
        Some(b'+') => i += 1,
        _ => {}
    }
    let mut digits: u128 = 0;
    let mut exp10: i32 = 0;
    let mut seen_digit = false;
    let mut seen_dot = false;
    while let Some(&c) = bytes.get(i) {
        match c {
            b'0'..=b'9' => {
                seen_digit = true;
                digits = digits
                    .checked_mul(10)
                    .and_then(|d| d.checked_add(u128::from(c - b'0')))
                    .ok_or_else(|| QuantityError("too many digits".to_string()))?;
                if seen_dot {
                    exp10 -= 1;
                }
            }
            b'.' if !seen_dot => seen_dot = true,
            _ => break,
        }
        i += 1;
    }
    if !seen_digit {
        return err("a quantity starts with a number");
    }
    let rest = &input[i..];
    // An exponent (`1e3`, `2E-2`) is `e`/`E` followed by an optional sign and digits; a lone `E`
    // is the exa suffix.
    let (exponent, suffix) = split_exponent(rest);
    if let Some(e) = exponent {
        let e: i32 = e
            .parse()
            .map_err(|_| QuantityError("exponent out of range".to_string()))?;
        if !(-100..=100).contains(&e) {
            return err("exponent out of range");
        }
        exp10 += e;
    }
    let (multiplier, suffix_exp10): (u128, i32) = match suffix {
        "" => (1, 0),
        "Ki" => (1 << 10, 0),
        "Mi" => (1 << 20, 0),
        "Gi" => (1 << 30, 0),
        "Ti" => (1 << 40, 0),
        "Pi" => (1 << 50, 0),
        "Ei" => (1 << 60, 0),
        "n" => (1, -9),
        "u" => (1, -6),
        "m" => (1, -3),
        "k" => (1, 3),
        "M" => (1, 6),
        "G" => (1, 9),
        "T" => (1, 12),
        "P" => (1, 15),
        "E" => (1, 18),
        _ if exponent.is_some() => return err("unexpected characters after the exponent"),
        other => {
            return Err(QuantityError(format!(
                "unknown suffix {other:?} (expected Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)"
            )));
        }
    };
    if exponent.is_some() && !suffix.is_empty() {
        return err("a quantity cannot have both an exponent and a suffix");
    }
    Ok(Quantity {
        digits,
        exp10: exp10 + suffix_exp10,
        multiplier,
    })
}

/// Splits `e-3Mi` style tails into (exponent digits, remaining suffix).
fn split_exponent(rest: &str) -> (Option<&str>, &str) {
    let b = rest.as_bytes();
    if matches!(b.first(), Some(b'e' | b'E')) {
        let mut j = 1;
        if matches!(b.get(1), Some(b'+' | b'-')) {
            j = 2;
        }
        let start_digits = j;
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        if j > start_digits {
            return (Some(&rest[1..j]), &rest[j..]);
        }
    }
    (None, rest)
}

/// CPU of a Kubernetes quantity in milli-cores (`250m` → 250, `2` → 2000), rounded up.
pub fn cpu_millis(quantity: &str) -> Result<u64, QuantityError> {
    parse_quantity(quantity)?.scaled_ceil(1000)
}

/// Bytes of a Kubernetes quantity (`512Mi`, `1G`, `1.5Gi`), rounded up.
pub fn quantity_bytes(quantity: &str) -> Result<u64, QuantityError> {
    parse_quantity(quantity)?.scaled_ceil(1)
}

/// The t-shirt sizes of the information model.
const SIZES: [&str; 4] = ["light", "small", "medium", "large"];

fn named_size(raw: &str) -> Option<usize> {
    SIZES.iter().position(|s| s.eq_ignore_ascii_case(raw))
}

/// Which compute dimension a size belongs to: each has its own t-shirt table and unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dimension {
    Cpu,
    Ram,
    Storage,
}

impl Dimension {
    /// Resolves a t-shirt size or a quantity to milli-cores (CPU) or bytes (RAM, storage).
    pub(crate) fn resolve(self, raw: &str) -> Result<u64, String> {
        const GI: u64 = 1 << 30;
        const MI: u64 = 1 << 20;
        const G: u64 = 1_000_000_000;
        if let Some(i) = named_size(raw) {
            let table: [u64; 4] = match self {
                Dimension::Cpu => [500, 1000, 4000, 8000],
                Dimension::Ram => [500 * MI, GI, 2 * GI, 8 * GI],
                Dimension::Storage => [10 * G, 10 * G, 20 * G, 40 * G],
            };
            return Ok(table[i]);
        }
        let parsed = match self {
            Dimension::Cpu => cpu_millis(raw),
            Dimension::Ram | Dimension::Storage => quantity_bytes(raw),
        };
        parsed.map_err(|e| {
            format!(
                "expected one of light|small|medium|large or a Kubernetes quantity, got {} ({e})",
                super::q(raw)
            )
        })
    }
}

macro_rules! size_spec {
    ($(#[$doc:meta])* $name:ident, $dim:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name {
            raw: String,
            value: u64,
        }

        impl $name {
            /// Parses a t-shirt size or a Kubernetes quantity.
            pub fn parse(raw: &str) -> Result<Self, String> {
                let value = $dim.resolve(raw)?;
                Ok(Self { raw: raw.to_string(), value })
            }
            /// The size exactly as the descriptor wrote it (shown back to users).
            pub fn raw(&self) -> &str {
                &self.raw
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(raw: String) -> Result<Self, String> {
                let value = $dim.resolve(&raw)?;
                Ok(Self { raw, value })
            }
        }

        impl From<$name> for String {
            fn from(spec: $name) -> String {
                spec.raw
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.raw)
            }
        }
    };
}

size_spec!(
    /// `compute.cpu`: kept as written, resolved once to milli-cores.
    CpuSize,
    Dimension::Cpu
);
size_spec!(
    /// `compute.ram`: kept as written, resolved once to bytes.
    RamSize,
    Dimension::Ram
);
size_spec!(
    /// `compute.storage`: kept as written, resolved once to bytes.
    StorageSize,
    Dimension::Storage
);

impl CpuSize {
    /// Milli-cores per replica.
    pub fn millis(&self) -> u64 {
        self.value
    }
}

impl RamSize {
    /// Bytes of memory per replica.
    pub fn bytes(&self) -> u64 {
        self.value
    }
}

impl StorageSize {
    /// Bytes of storage per replica.
    pub fn bytes(&self) -> u64 {
        self.value
    }
}

impl Default for CpuSize {
    fn default() -> Self {
        Self {
            raw: "small".into(),
            value: 1000,
        }
    }
}

impl Default for RamSize {
    fn default() -> Self {
        Self {
            raw: "small".into(),
            value: 1 << 30,
        }
    }
}

impl Default for StorageSize {
    fn default() -> Self {
        Self {
            raw: "small".into(),
            value: 10_000_000_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quantities() {
        for (q, m) in [
            ("250m", 250),
            ("2", 2000),
            ("0.5", 500),
            (".5", 500),
            ("5.", 5000),
            ("+1", 1000),
            ("1500m", 1500),
            ("100n", 1),
            ("1u", 1),
            ("0", 0),
            ("1e3", 1_000_000),
            ("2E-3", 2),
            ("1k", 1_000_000),
        ] {
            assert_eq!(cpu_millis(q), Ok(m), "{q}");
        }
    }

    #[test]
    fn byte_quantities() {
        for (q, b) in [
            ("512Mi", 512 << 20),
            ("1Gi", 1 << 30),
            ("1.5Gi", 1_610_612_736),
            ("1G", 1_000_000_000),
            ("10G", 10_000_000_000),
            ("128974848", 128_974_848),
            ("129e6", 129_000_000),
            ("123Mi", 128_974_848),
            ("1Ki", 1024),
            ("1k", 1000),
            ("1E", 1_000_000_000_000_000_000),
            ("1Ei", 1 << 60),
            ("0.1", 1),
            ("1m", 1),
        ] {
            assert_eq!(quantity_bytes(q), Ok(b), "{q}");
        }
    }

    #[test]
    fn the_same_amount_written_differently_is_the_same_quantity() {
        for (a, b) in [
            ("1000m", "1"),
            ("0.5", "500m"),
            ("1Gi", "1073741824"),
            ("1Gi", "1024Mi"),
            ("128974848", "123Mi"),
            ("1e3", "1k"),
            ("1.5", "1500m"),
            ("0", "0m"),
        ] {
            assert!(same_quantity(a, b), "{a} = {b}");
            assert!(same_quantity(b, a), "{b} = {a}");
        }
        for (a, b) in [
            ("1", "2"),
            ("500m", "501m"),
            ("1Gi", "1G"),
            ("1Mi", "1M"),
            ("1", "1n"),
            ("abc", "abd"),
        ] {
            assert!(!same_quantity(a, b), "{a} ≠ {b}");
        }
        // Not quantities: compared as text.
        assert!(same_quantity("abc", "abc"));
        assert!(!same_quantity("abc", "1"));
        // Below a nano the API server rounds up, so these are stored alike.
        assert!(same_quantity("0.1n", "1n"));
    }

    #[test]
    fn bad_quantities() {
        for q in [
            "",
            "-1",
            "abc",
            "1.2.3",
            "1Mx",
            "1 Gi",
            "Gi",
            ".",
            "1e",
            "1e3Mi",
            "1ee3",
            "m",
            "1i",
            "16Ei",
            "99999999999999999999999999999999999999999",
            "1e101",
        ] {
            assert!(quantity_bytes(q).is_err(), "{q:?} should be rejected");
        }
        assert!(cpu_millis("20E").is_err(), "overflows u64 milli-cores");
        assert!(quantity_bytes(&"1".repeat(65)).is_err());
    }

    #[test]
    fn tiny_negative_exponents_round_up() {
        assert_eq!(quantity_bytes("1e-50"), Ok(1));
        assert_eq!(quantity_bytes("0e-50"), Ok(0));
    }

    #[test]
    fn t_shirt_sizes() {
        let cpu: Vec<u64> = SIZES
            .iter()
            .map(|s| CpuSize::parse(s).map(|c| c.millis()).unwrap_or(0))
            .collect();
        assert_eq!(cpu, [500, 1000, 4000, 8000]);
        let ram: Vec<u64> = SIZES
            .iter()
            .map(|s| RamSize::parse(s).map(|c| c.bytes()).unwrap_or(0))
            .collect();
        assert_eq!(ram, [500 << 20, 1 << 30, 2 << 30, 8 << 30]);
        let st: Vec<u64> = SIZES
            .iter()
            .map(|s| StorageSize::parse(s).map(|c| c.bytes()).unwrap_or(0))
            .collect();
        assert_eq!(
            st,
            [
                10_000_000_000,
                10_000_000_000,
                20_000_000_000,
                40_000_000_000
            ]
        );
        assert_eq!(CpuSize::parse("Medium").map(|c| c.millis()), Ok(4000));
        assert_eq!(
            CpuSize::default(),
            CpuSize::parse("small").unwrap_or_default()
        );
        assert_eq!(
            RamSize::default(),
            RamSize::parse("small").unwrap_or_default()
        );
        assert_eq!(
            StorageSize::default(),
            StorageSize::parse("small").unwrap_or_default()
        );
    }

    #[test]
    fn size_error_message() {
        let e = CpuSize::parse("huge").err().unwrap_or_default();
        assert!(
            e.starts_with(
                r#"expected one of light|small|medium|large or a Kubernetes quantity, got "huge""#
            ),
            "{e}"
        );
    }

    #[test]
    fn size_serde_round_trip() {
        let c = CpuSize::parse("250m").unwrap_or_default();
        let json = serde_json::to_string(&c).unwrap_or_default();
        assert_eq!(json, "\"250m\"");
        let back: Result<CpuSize, _> = serde_json::from_str(&json);
        assert_eq!(back.ok(), Some(c));
        assert!(serde_json::from_str::<CpuSize>("\"huge\"").is_err());
    }
}
