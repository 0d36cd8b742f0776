//! `cachet bench` end to end on SQLite, briefly: every message sent arrives, opens, and is
//! counted; the report is complete. (It checks the generator, not the numbers.)

use std::time::Duration;

use cachet_cli::bench::{self, BenchOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_bench_delivers_every_message_and_reports() {
    let options = BenchOptions {
        users: 3,
        duration: Duration::from_secs(1),
        database_url: None,
        data_dir: None,
        batch: 10,
    };
    let mut progress = Vec::new();
    let report = bench::run(options, &mut progress)
        .await
        .expect("bench runs");
    assert_eq!(report.database, "sqlite");
    for phase in [&report.peak, &report.half_load] {
        assert!(phase.messages > 0, "messages were delivered: {phase:?}");
        assert_eq!(phase.errors, 0, "no request failed: {phase:?}");
        assert!(phase.p50_ms <= phase.p99_ms && phase.p99_ms <= phase.p999_ms);
    }
    assert!(report.half_load.offered_per_second.is_some());
    assert!(report.db_ceiling_rows_per_second > 0.0);
    assert!(report.db_unbatched_rows_per_second > 0.0);
    assert!(report.http_ceiling_requests_per_second > 0.0);
    assert!(report.rss_kib.is_some_and(|kib| kib > 0));
    let text = bench::render(&report);
    assert!(text.contains("database ceiling") && text.contains("p99"));
    let json = serde_json::to_value(&report).expect("serialises");
    assert!(json["peak"]["messages_per_second"].is_number());
}
