//! Prometheus metrics, with bounded label values.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Latency histogram bucket bounds in seconds.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Inner {
    /// (metric name, rendered labels) → value.
    counters: BTreeMap<(&'static str, String), u64>,
    histograms: BTreeMap<(&'static str, String), Histogram>,
}

/// The gateway's metrics registry.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn labels(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
    }
    out
}

impl Metrics {
    fn inc(&self, name: &'static str, pairs: &[(&str, &str)]) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *inner.counters.entry((name, labels(pairs))).or_default() += 1;
    }

    fn observe(&self, name: &'static str, pairs: &[(&str, &str)], value: Duration) {
        let seconds = value.as_secs_f64();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let h = inner.histograms.entry((name, labels(pairs))).or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                h.counts[i] += 1;
            }
        }
        h.sum += seconds;
        h.count += 1;
    }

    /// A finished request: front end (`flight`, `http`) and outcome (`ok`, `error`, `denied`, …).
    pub fn request(&self, frontend: &str, outcome: &str, took: Duration) {
        self.inc("creditgate_requests_total", &[("frontend", frontend), ("outcome", outcome)]);
        self.observe("creditgate_request_duration_seconds", &[("frontend", frontend)], took);
    }

    /// A released result stream that ended: outcome `ok`, `error` or
    /// `cancelled` (its request was counted when it was released).
    pub fn stream_end(&self, frontend: &str, outcome: &str, took: Duration) {
        self.inc("creditgate_stream_ends_total", &[("frontend", frontend), ("outcome", outcome)]);
        self.observe("creditgate_stream_duration_seconds", &[("frontend", frontend)], took);
    }

    /// A refusal, by stable error code.
    pub fn denial(&self, frontend: &str, code: &str) {
        self.inc("creditgate_denials_total", &[("frontend", frontend), ("code", code)]);
    }

    /// One remote query to a source.
    pub fn source_query(&self, source: &str, status: &str, took: Duration) {
        self.inc("creditgate_source_queries_total", &[("source", source), ("status", status)]);
        self.observe("creditgate_source_duration_seconds", &[("source", source)], took);
    }

    /// A look-up in one of the plan caches: `cache` is `prepared` (SQL
    /// statements with parameters) or `lookup` (subject lookups), `result`
    /// is `hit` or `miss`.
    pub fn plan_cache(&self, cache: &'static str, result: &'static str) {
        self.inc("creditgate_plan_cache_total", &[("cache", cache), ("result", result)]);
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        let mut last = "";
        for ((name, labels), value) in &inner.counters {
            if *name != last {
                let _ = writeln!(out, "# TYPE {name} counter");
                last = name;
            }
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
        last = "";
        for ((name, labels), h) in &inner.histograms {
            if *name != last {
                let _ = writeln!(out, "# TYPE {name} histogram");
                last = name;
            }
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {}", h.counts[i]);
            }
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum);
            let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let m = Metrics::default();
        m.request("http", "ok", Duration::from_millis(20));
        m.request("http", "ok", Duration::from_millis(20));
        m.source_query("court", "timeout", Duration::from_secs(3));
        let text = m.render();
        assert!(text.contains("creditgate_requests_total{frontend=\"http\",outcome=\"ok\"} 2"), "{text}");
        assert!(text.contains("creditgate_source_queries_total{source=\"court\",status=\"timeout\"} 1"), "{text}");
        assert!(text.contains("creditgate_source_duration_seconds_bucket{source=\"court\",le=\"2.5\"} 0"), "{text}");
        assert!(text.contains("creditgate_source_duration_seconds_bucket{source=\"court\",le=\"10\"} 1"), "{text}");
    }
}
