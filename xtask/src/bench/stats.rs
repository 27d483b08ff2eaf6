//! Pure numbers: percentiles, medians, canary drift, and how they are printed.

/// Nearest-rank percentile of `sorted` (ascending); `None` when empty.
pub(crate) fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// The median (the mean of the two middle values for an even count); `None` when empty.
pub(crate) fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 })
}

/// Relative change of the CPU canary from `before` to `after` (0.1 = 10% faster after).
pub(crate) fn drift(before: f64, after: f64) -> Option<f64> {
    (before > 0.0 && after.is_finite()).then(|| (after - before) / before)
}

/// The canary moved more than this fraction: the scenario's numbers are suspect.
pub(crate) const CANARY_TOLERANCE: f64 = 0.15;

pub(crate) fn canary_flagged(before: f64, after: f64) -> bool {
    drift(before, after).is_none_or(|d| d.abs() > CANARY_TOLERANCE)
}

/// `a / b`, when both are meaningful.
pub(crate) fn ratio(a: f64, b: f64) -> Option<f64> {
    (a.is_finite() && b.is_finite() && a > 0.0 && b > 0.0).then(|| a / b)
}

/// 12345.6 -> "12,346"; below 100 keeps one decimal.
pub(crate) fn fmt_rate(per_sec: f64) -> String {
    if !per_sec.is_finite() {
        return "–".into();
    }
    if per_sec < 100.0 {
        return format!("{per_sec:.1}");
    }
    let whole = per_sec.round() as u64;
    let digits = whole.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Microseconds as "850 µs", "1.25 ms", "2.40 s".
pub(crate) fn fmt_us(us: u64) -> String {
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..1_000_000 => format!("{:.2} ms", us as f64 / 1e3),
        _ => format!("{:.2} s", us as f64 / 1e6),
    }
}

/// Bytes as "512 B", "12.3 KiB", "45.6 MiB", "1.20 GiB".
pub(crate) fn fmt_bytes(bytes: u64) -> String {
    let b = bytes as f64;
    match bytes {
        0..1024 => format!("{bytes} B"),
        1024..1_048_576 => format!("{:.1} KiB", b / 1024.0),
        1_048_576..1_073_741_824 => format!("{:.1} MiB", b / 1_048_576.0),
        _ => format!("{:.2} GiB", b / 1_073_741_824.0),
    }
}

pub(crate) fn fmt_ratio(r: Option<f64>) -> String {
    match r {
        Some(r) if r >= 10.0 => format!("{r:.0}×"),
        Some(r) => format!("{r:.2}×"),
        None => "–".into(),
    }
}

pub(crate) fn fmt_pct(r: Option<f64>) -> String {
    r.map_or_else(|| "–".into(), |r| format!("{:.0}%", r * 100.0))
}

/// 1_000_000 -> "1M", 10_000 -> "10k".
pub(crate) fn fmt_count(n: u64) -> String {
    match n {
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}k", n / 1_000),
        n => n.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[1, 2, 3], 50.0), Some(2));
        assert_eq!(percentile(&[1, 2, 3, 1000], 99.0), Some(1000));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[f64::NAN, 5.0]), Some(5.0));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn canary_drift_is_flagged_beyond_fifteen_percent() {
        assert!(!canary_flagged(1000.0, 1000.0));
        assert!(!canary_flagged(1000.0, 1140.0));
        assert!(!canary_flagged(1000.0, 860.0));
        assert!(canary_flagged(1000.0, 1160.0));
        assert!(canary_flagged(1000.0, 840.0));
        assert!(canary_flagged(0.0, 840.0), "a canary that did not run cannot vouch for anything");
        let d = drift(1000.0, 800.0).unwrap_or_default();
        assert!((d + 0.2).abs() < 1e-12);
    }

    #[test]
    fn formatting() {
        assert_eq!(fmt_rate(12345.6), "12,346");
        assert_eq!(fmt_rate(1234567.0), "1,234,567");
        assert_eq!(fmt_rate(999.0), "999");
        assert_eq!(fmt_rate(31.94), "31.9");
        assert_eq!(fmt_us(850), "850 µs");
        assert_eq!(fmt_us(1250), "1.25 ms");
        assert_eq!(fmt_us(2_400_000), "2.40 s");
        assert_eq!(fmt_bytes(512), "512 B");
        assert_eq!(fmt_bytes(20 * 1024 * 1024), "20.0 MiB");
        assert_eq!(fmt_ratio(Some(5.234)), "5.23×");
        assert_eq!(fmt_ratio(Some(12.4)), "12×");
        assert_eq!(fmt_ratio(ratio(1.0, 0.0)), "–");
        assert_eq!(fmt_pct(Some(0.834)), "83%");
        assert_eq!(fmt_count(10_000), "10k");
        assert_eq!(fmt_count(10_000_000), "10M");
        assert_eq!(fmt_count(1234), "1234");
    }
}
