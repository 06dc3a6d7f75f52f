//! `--hdr-out FILE`: the whole latency distribution in HdrHistogram's
//! "percentile distribution" text (as `outputPercentileDistribution` in
//! Java, and wrk2's `--latency` block), which HdrHistogram's plotter reads.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

/// Ticks per half distance to 100 %, as HdrHistogram's default output.
const TICKS_PER_HALF: u32 = 5;

/// The distribution of `latency` (recorded in µs) with values in
/// milliseconds: a header, one row per percentile step (Value, Percentile,
/// TotalCount, 1/(1-Percentile); the last row has no fourth column), and the
/// `#[Mean …]` footer.
pub(crate) fn percentile_distribution(latency: &Histogram<u64>) -> String {
    const MS: f64 = 1000.0;
    let mut out = format!(
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let mut total = 0u64;
    if !latency.is_empty() {
        for v in latency.iter_quantiles(TICKS_PER_HALF) {
            total += v.count_since_last_iteration();
            let value = v.value_iterated_to() as f64 / MS;
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                let _ = writeln!(
                    out,
                    "{value:12.3} {q:2.12} {total:10} {:14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(out, "{value:12.3} {q:2.12} {total:10}");
            }
        }
    }
    let sub_buckets = (2.0 * 10f64.powi(i32::from(latency.sigfig())))
        .log2()
        .ceil()
        .exp2() as u64;
    let _ = write!(
        out,
        "#[Mean    = {:12.3}, StdDeviation   = {:12.3}]\n\
         #[Max     = {:12.3}, Total count    = {:12}]\n\
         #[Buckets = {:12}, SubBuckets     = {:12}]\n",
        latency.mean() / MS,
        latency.stdev() / MS,
        latency.max() as f64 / MS,
        latency.len(),
        latency.buckets(),
        sub_buckets,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_climb_to_the_max_and_count_every_sample() {
        let mut h = Histogram::<u64>::new_with_bounds(1, 100_000_000, 3).expect("bounds");
        for us in 1..=1000u64 {
            h.record(us * 10).expect("in range");
        }
        let text = percentile_distribution(&h);
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("       Value     Percentile TotalCount 1/(1-Percentile)")
        );
        assert_eq!(lines.next(), Some(""));
        let rows: Vec<Vec<&str>> = text
            .lines()
            .skip(2)
            .take_while(|l| !l.starts_with('#'))
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert!(rows.len() > 20, "{text}");
        let first = &rows[0];
        assert_eq!(
            (first[0], first[1], first[2]),
            ("0.010", "0.000000000000", "1")
        );
        let last = rows.last().expect("rows");
        assert_eq!(last.len(), 3, "the last row has no 1/(1-p): {text}");
        assert_eq!(
            (last[0], last[1], last[2]),
            ("10.007", "1.000000000000", "1000")
        );
        // Values and counts never go down.
        for pair in rows.windows(2) {
            let v = |r: &Vec<&str>, i: usize| r[i].parse::<f64>().expect("number");
            assert!(v(&pair[1], 0) >= v(&pair[0], 0) && v(&pair[1], 2) >= v(&pair[0], 2));
        }
        assert!(text.contains("#[Max     =       10.007, Total count    =         1000]"));
        assert!(text.contains("SubBuckets     =         2048]"));
    }
}
