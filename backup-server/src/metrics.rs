//! Prometheus text-format metrics, kept in memory per replica.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds (seconds) of the latency histogram buckets.
const LATENCY_BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

/// What one route has seen: requests by method and status, and their latency.
#[derive(Default)]
struct RouteStats {
    requests: BTreeMap<(&'static str, u16), u64>,
    latency: Histogram,
}

/// Every counter the server exports.
#[derive(Default)]
pub struct Metrics {
    /// By route pattern (a fixed set). A route seen before is counted without allocating.
    routes: Mutex<BTreeMap<String, RouteStats>>,
    /// Object bytes received in uploads.
    pub bytes_in: AtomicU64,
    /// Object bytes sent in downloads.
    pub bytes_out: AtomicU64,
    /// Login starts, whatever the account (existing, delayed or unknown alike, so that the counter
    /// tells nobody which accounts exist or are delayed). Every one either succeeds (`logins_ok`)
    /// or not.
    pub login_attempts: AtomicU64,
    /// Successful password logins (login finishes that reset the account's counter).
    pub logins_ok: AtomicU64,
    /// Login finishes the server rejected: a finalization that does not verify, a sealed state
    /// that is expired or forged, or a password changed since the start. A wrong password normally
    /// fails on the client, which then never sends a finish.
    pub login_finishes_rejected: AtomicU64,
    /// Accounts whose counted failed logins reached the free limit (further ones are delayed).
    pub login_delays: AtomicU64,
    /// Login starts refused for want of a valid login ticket.
    pub login_tickets_refused: AtomicU64,
    /// Objects written.
    pub objects_stored: AtomicU64,
    /// Objects deleted.
    pub objects_deleted: AtomicU64,
    /// Presigned uploads authorised (quota reserved, URL issued).
    pub direct_uploads: AtomicU64,
    /// Presigned downloads authorised.
    pub direct_downloads: AtomicU64,
}

/// Adds one to a counter.
pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Metrics {
    /// Records one finished request.
    pub fn observe(&self, route: &str, method: &'static str, status: u16, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let mut routes = self.routes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if !routes.contains_key(route) {
            routes.insert(route.to_owned(), RouteStats::default());
        }
        let Some(stats) = routes.get_mut(route) else { return };
        *stats.requests.entry((method, status)).or_default() += 1;
        let histogram = &mut stats.latency;
        for (count, bound) in histogram.counts.iter_mut().zip(LATENCY_BUCKETS) {
            if secs <= bound {
                *count += 1;
            }
        }
        histogram.count += 1;
        histogram.sum += secs;
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP backup_http_requests_total HTTP requests by route, method and status.\n");
        out.push_str("# TYPE backup_http_requests_total counter\n");
        let routes = self.routes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for (route, stats) in routes.iter() {
            for ((method, status), n) in &stats.requests {
                let _ = writeln!(
                    out,
                    "backup_http_requests_total{{route=\"{route}\",method=\"{method}\",status=\"{status}\"}} {n}"
                );
            }
        }
        out.push_str("# HELP backup_http_request_duration_seconds Request latency by route.\n");
        out.push_str("# TYPE backup_http_request_duration_seconds histogram\n");
        for (route, stats) in routes.iter() {
            let h = &stats.latency;
            for (count, bound) in h.counts.iter().zip(LATENCY_BUCKETS) {
                let _ = writeln!(
                    out,
                    "backup_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}"
                );
            }
            let _ = writeln!(
                out,
                "backup_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(out, "backup_http_request_duration_seconds_sum{{route=\"{route}\"}} {}", h.sum);
            let _ = writeln!(out, "backup_http_request_duration_seconds_count{{route=\"{route}\"}} {}", h.count);
        }
        drop(routes);
        let counters: [(&str, &str, &AtomicU64); 11] = [
            ("backup_object_bytes_received_total", "Object bytes received in uploads.", &self.bytes_in),
            ("backup_object_bytes_sent_total", "Object bytes sent in downloads.", &self.bytes_out),
            (
                "backup_login_attempts_total",
                "Login starts, whatever the account; failed logins are attempts minus successes.",
                &self.login_attempts,
            ),
            ("backup_logins_ok_total", "Successful password logins.", &self.logins_ok),
            (
                "backup_login_finishes_rejected_total",
                "Login finishes the server rejected (bad finalization, expired or forged state).",
                &self.login_finishes_rejected,
            ),
            ("backup_login_delays_total", "Accounts whose failed logins reached the free limit.", &self.login_delays),
            (
                "backup_login_tickets_refused_total",
                "Login starts refused for want of a valid login ticket.",
                &self.login_tickets_refused,
            ),
            ("backup_objects_stored_total", "Objects written.", &self.objects_stored),
            ("backup_objects_deleted_total", "Objects deleted.", &self.objects_deleted),
            ("backup_direct_uploads_total", "Presigned uploads authorised.", &self.direct_uploads),
            ("backup_direct_downloads_total", "Presigned downloads authorised.", &self.direct_downloads),
        ];
        for (name, help, value) in counters {
            let _ =
                writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}", value.load(Ordering::Relaxed));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_requests_histograms_and_counters() {
        let metrics = Metrics::default();
        metrics.observe("/v1/objects/{id}", "PUT", 201, Duration::from_millis(3));
        metrics.observe("/v1/objects/{id}", "PUT", 201, Duration::from_millis(30));
        bump(&metrics.logins_ok);
        let text = metrics.render();
        assert!(
            text.contains("backup_http_requests_total{route=\"/v1/objects/{id}\",method=\"PUT\",status=\"201\"} 2")
        );
        assert!(
            text.contains("backup_http_request_duration_seconds_bucket{route=\"/v1/objects/{id}\",le=\"0.005\"} 1")
        );
        assert!(text.contains("backup_http_request_duration_seconds_count{route=\"/v1/objects/{id}\"} 2"));
        assert!(text.contains("backup_logins_ok_total 1"));
    }

    #[test]
    fn every_login_counter_is_rendered() {
        let metrics = Metrics::default();
        bump(&metrics.login_attempts);
        bump(&metrics.login_attempts);
        let text = metrics.render();
        for line in [
            "backup_login_attempts_total 2",
            "backup_logins_ok_total 0",
            "backup_login_finishes_rejected_total 0",
            "backup_login_delays_total 0",
            "backup_login_tickets_refused_total 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in {text}");
        }
    }
}
