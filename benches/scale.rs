//! Reads at scale (issue 14): seed a database with many alerts, then drive the read routes with
//! an external load generator.
//!
//! ```text
//! cargo bench --bench scale -- seed  --alerts 1000000 --database-url postgres://…/calseta_scale
//! cargo bench --bench scale -- reads --database-url postgres://…/calseta_scale [--seconds 10] [--connections 16]
//! ```
//!
//! `seed` writes straight to the database with set-based SQL (`generate_series` on PostgreSQL, a
//! recursive CTE on SQLite), in chunks of 50,000 alerts: alerts with a realistic spread of
//! sources, severities, statuses, enrichment, tags, rules and times (evenly over the last 60
//! days), two indicator links each (indicators: a third of the alert count, shared), and one
//! `alert_ingested` activity event each; then the finished jobs of the last 7 days (two per alert,
//! as the 7-day pruning leaves them). It appends to what is there. `seed-jobs` adds only the jobs,
//! without migrating (to compare a build with an older schema).
//!
//! `reads` starts the release binary on the seeded database (role `api` only, rate limits off),
//! creates an admin key with the CLI and runs `wrk` (Debian: `apt-get install wrk`) against each
//! read scenario, printing requests/s, p50 and p99. The generator shares the machine with the
//! server, so figures are for "client + server on one box".

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use calseta::db::Db;
use tokio::io::{AsyncBufReadExt, BufReader};

const CHUNK: i64 = 50_000;
const SOURCES: [&str; 8] = ["sentinel", "splunk", "elastic", "crowdstrike", "defender", "guardduty", "okta", "generic"];
const RULES: i64 = 20;
/// Seconds over which the seeded alerts' creation times spread (60 days, ending now).
const SPREAD_SECONDS: i64 = 60 * 86_400;

struct Args {
    command: String,
    alerts: i64,
    database_url: String,
    seconds: u64,
    connections: u32,
}

fn parse_args() -> Args {
    let mut args = Args {
        command: String::new(),
        alerts: 1_000_000,
        database_url: std::env::var("DATABASE_URL").unwrap_or_default(),
        seconds: 10,
        connections: 16,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "seed" | "seed-jobs" | "reads" => args.command = arg,
            "--alerts" => args.alerts = it.next().and_then(|v| v.parse().ok()).expect("--alerts N"),
            "--database-url" => args.database_url = it.next().expect("--database-url URL"),
            "--seconds" => args.seconds = it.next().and_then(|v| v.parse().ok()).expect("--seconds N"),
            "--connections" => args.connections = it.next().and_then(|v| v.parse().ok()).expect("--connections N"),
            // `cargo bench` passes `--bench` to every harness=false target.
            _ => {}
        }
    }
    args
}

/// SQL fragments that differ between the backends, for the seed statements.
struct Dialect {
    postgres: bool,
}

impl Dialect {
    /// A fresh uuid.
    fn uuid(&self) -> &'static str {
        if self.postgres { "gen_random_uuid()" } else { "randomblob(16)" }
    }
    /// The timestamp `base_epoch_seconds + seconds_expr` as the column type stores it.
    fn time(&self, seconds: &str) -> String {
        if self.postgres {
            format!("to_timestamp({seconds})")
        } else {
            // The text sqlx writes for a whole-second DateTime<Utc> (RFC 3339, `+00:00`).
            format!("strftime('%Y-%m-%dT%H:%M:%S+00:00', {seconds}, 'unixepoch')")
        }
    }
    fn bool(&self, condition: &str) -> String {
        if self.postgres { format!("({condition})") } else { format!("CASE WHEN {condition} THEN 1 ELSE 0 END") }
    }
    fn json(&self, text: &str) -> String {
        if self.postgres { format!("CAST({text} AS JSONB)") } else { text.to_owned() }
    }
    /// `SELECT … FROM <rows i = first..=last>`.
    fn series(&self, first: i64, last: i64, select: &str) -> String {
        if self.postgres {
            format!("{select} FROM generate_series({first}::bigint, {last}::bigint) AS s(i) WHERE 1 = 1")
        } else {
            format!("WITH RECURSIVE s(i) AS (SELECT {first} UNION ALL SELECT i + 1 FROM s WHERE i < {last}) {select} FROM s WHERE 1 = 1")
        }
    }
}

fn pick(values: &[&str], index: &str) -> String {
    let arms: Vec<String> = values.iter().enumerate().map(|(n, v)| format!("WHEN {n} THEN '{v}'")).collect();
    format!("CASE {index} {} END", arms.join(" "))
}

async fn execute(db: &Db, sql: String) -> i64 {
    calseta::with_db!(db, p => sqlx::query(sqlx::AssertSqlSafe(sql)).execute(p).await.map(|r| r.rows_affected() as i64))
        .unwrap_or_else(|e| panic!("seed statement failed: {e}"))
}

async fn scalar(db: &Db, sql: &str) -> i64 {
    calseta::with_db!(db, p => sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_owned())).fetch_one(p).await).unwrap()
}

async fn seed(args: &Args) {
    let db = Db::connect(&args.database_url, 4).await.expect("connect");
    db.migrate().await.expect("migrate");
    let d = Dialect { postgres: matches!(db, Db::Postgres(_)) };
    let started = Instant::now();
    let now = chrono::Utc::now().timestamp();
    let base = scalar(&db, "SELECT COALESCE(MAX(id), 0) FROM alerts").await;
    let ind_base = scalar(&db, "SELECT COALESCE(MAX(id), 0) FROM indicators").await;
    let indicators = (args.alerts / 3).max(1);

    // Detection rules: ids are consecutive in a single multi-row insert.
    let rows: Vec<String> = (0..RULES)
        .map(|r| format!("({}, 'Bench rule {r}', '{}', {})", d.uuid(), SOURCES[r as usize % SOURCES.len()], d.bool("1 = 1")))
        .collect();
    execute(&db, format!("INSERT INTO detection_rules (uuid, name, source_name, is_active) VALUES {}", rows.join(", "))).await;
    let first_rule = scalar(&db, "SELECT MAX(id) FROM detection_rules").await - RULES + 1;

    // Indicators.
    let types = ["ip", "domain", "hash_sha256", "url", "email", "account"];
    for first in (1..=indicators).step_by(CHUNK as usize) {
        let last = (first + CHUNK - 1).min(indicators);
        let j = format!("(i + {ind_base})");
        let kind = pick(&types, "(i % 6)");
        let seen = d.time(&format!("{now} - (i % {SPREAD_SECONDS})"));
        let select = format!(
            "SELECT {uuid}, {kind}, 'bench-' || {kind} || '-' || {j}, {seen}, {seen}, {enriched}, {malice}, 'enrichment', {seen}, {seen}",
            uuid = d.uuid(),
            enriched = d.bool("i % 10 <> 0"),
            malice = pick(&["Pending", "Benign", "Suspicious", "Malicious"], "(i % 4)"),
        );
        execute(&db, format!(
            "INSERT INTO indicators (uuid, type, value, first_seen, last_seen, is_enriched, malice, malice_source, created_at, updated_at) {}",
            d.series(first, last, &select)
        ))
        .await;
    }
    println!("seed: {indicators} indicators ({:.1} s)", started.elapsed().as_secs_f64());

    // Alerts, their links and activity, chunk by chunk (each chunk one transaction per table).
    // `h` scatters the attributes so neighbouring rows differ; `i` orders creation times.
    let h = "((i * 2654435761) % 1000003)";
    for first in (1..=args.alerts).step_by(CHUNK as usize) {
        let last = (first + CHUNK - 1).min(args.alerts);
        let created_s = format!("({now} - {SPREAD_SECONDS} + (i * {SPREAD_SECONDS}) / {}) ", args.alerts);
        let created = d.time(&created_s);
        let severity = format!(
            "CASE WHEN {h} % 100 < 20 THEN 'Informational' WHEN {h} % 100 < 50 THEN 'Low' WHEN {h} % 100 < 80 THEN 'Medium' \
             WHEN {h} % 100 < 95 THEN 'High' ELSE 'Critical' END"
        );
        let status_n = format!("(({h} / 100) % 100)");
        let status = format!("CASE WHEN {status_n} < 50 THEN 'Open' WHEN {status_n} < 60 THEN 'Triaging' WHEN {status_n} < 65 THEN 'Escalated' ELSE 'Closed' END");
        let enrich_n = format!("(({h} / 10000) % 100)");
        let enrichment = format!("CASE WHEN {enrich_n} < 90 THEN 'Enriched' WHEN {enrich_n} < 92 THEN 'Failed' ELSE 'Pending' END");
        let tags = pick(
            &["[\"bench\"]", "[\"bench\", \"phishing\"]", "[\"bench\", \"malware\", \"edr\"]", "[\"bench\", \"cloud\"]", "[\"bench\", \"identity\"]"],
            &format!("({h} % 5)"),
        );
        let select = format!(
            "SELECT {uuid}, 'Bench alert ' || i, {severity}, {source}, {occurred}, {created}, \
               CASE WHEN {enrich_n} < 90 THEN {enriched_at} END, {is_enriched}, 'bench-' || i, 0, {status}, {enrichment}, \
               CASE WHEN {status_n} >= 65 THEN CASE WHEN {h} % 5 < 2 THEN 'False Positive - Incorrect Detection Logic' \
                 ELSE 'True Positive - Suspicious Activity' END END, \
               CASE WHEN {status_n} >= 50 THEN {acked} END, CASE WHEN {status_n} >= 50 THEN {triaged} END, \
               CASE WHEN {status_n} >= 65 THEN {closed} END, \
               {payload}, {tags_json}, {not_system}, CASE WHEN {h} % 5 < 4 THEN {first_rule} + {h} % {RULES} END, {created}, {created}",
            uuid = d.uuid(),
            source = pick(&SOURCES, &format!("(({h} / 7) % 8)")),
            occurred = d.time(&format!("{created_s} - {h} % 600")),
            enriched_at = d.time(&format!("{created_s} + 2")),
            is_enriched = d.bool(&format!("{enrich_n} < 90")),
            acked = d.time(&format!("{created_s} + 300")),
            triaged = d.time(&format!("{created_s} + 900")),
            closed = d.time(&format!("{created_s} + 3600")),
            payload = d.json("'{\"bench\": true}'"),
            tags_json = d.json(&tags),
            not_system = d.bool("1 = 0"),
        );
        execute(&db, format!(
            "INSERT INTO alerts (uuid, title, severity, source_name, occurred_at, ingested_at, enriched_at, is_enriched, fingerprint, \
             duplicate_count, status, enrichment_status, close_classification, acknowledged_at, triaged_at, closed_at, raw_payload, tags, \
             is_system, detection_rule_id, created_at, updated_at) {}",
            d.series(first, last, &select)
        ))
        .await;
        // Two links per alert: one indicator by position, one scattered (the pair may coincide).
        for pick_indicator in ["(i % {n})", "({h} % {n})"] {
            let j = pick_indicator.replace("{n}", &indicators.to_string()).replace("{h}", h);
            let select = format!("SELECT i + {base}, {j} + 1 + {ind_base}, {created}, {created}");
            execute(&db, format!(
                "INSERT INTO alert_indicators (alert_id, indicator_id, created_at, updated_at) {} ON CONFLICT DO NOTHING",
                d.series(first, last, &select)
            ))
            .await;
        }
        let select = format!("SELECT {}, 'alert_ingested', 'system', i + {base}, {created}", d.uuid());
        execute(&db, format!(
            "INSERT INTO activity_events (uuid, event_type, actor_type, alert_id, created_at) {}",
            d.series(first, last, &select)
        ))
        .await;
        println!("seed: {last}/{} alerts ({:.1} s)", args.alerts, started.elapsed().as_secs_f64());
    }
    seed_jobs_with(&db, &d, args.alerts).await;
    if d.postgres {
        // VACUUM as well: a production server's autovacuum sets the visibility map of a table that
        // has only been appended to, which index-only scans (the bounded counts) depend on. Without
        // it every counted index entry is also a heap visit (machines with autovacuum off, as CI's).
        execute(&db, "VACUUM (ANALYZE)".to_owned()).await;
    } else {
        execute(&db, "PRAGMA optimize=0x10002".to_owned()).await;
        execute(&db, "ANALYZE".to_owned()).await;
    }
    println!("seed: done in {:.1} s", started.elapsed().as_secs_f64());
    db.close().await;
}

/// The finished jobs a week of those alerts leaves in the job table (finished jobs are pruned
/// after 7 days): an enrichment and an agent delivery per alert of the last 7 days, 1% failed.
async fn seed_jobs_with(db: &Db, d: &Dialect, alerts: i64) {
    let started = Instant::now();
    let now = chrono::Utc::now().timestamp();
    let week = 7 * 86_400;
    let jobs = alerts * week / SPREAD_SECONDS;
    let h = "((i * 2654435761) % 1000003)";
    for (queue, task) in [("enrichment", "enrich_alert"), ("dispatch", "deliver_agent_webhook")] {
        for first in (1..=jobs).step_by(CHUNK as usize) {
            let last = (first + CHUNK - 1).min(jobs);
            let created_s = format!("({now} - {week} + (i * {week}) / {jobs})");
            let select = format!(
                "SELECT {uuid}, '{queue}', '{task}', {payload}, CASE WHEN {h} % 100 = 0 THEN 'failed' ELSE 'succeeded' END, 1, \
                   {run_at}, {started}, {finished}, {run_at}, {finished}",
                uuid = d.uuid(),
                payload = d.json("'{}'"),
                run_at = d.time(&created_s),
                started = d.time(&format!("{created_s} + 1")),
                finished = d.time(&format!("{created_s} + 1 + {h} % 3")),
            );
            execute(db, format!(
                "INSERT INTO jobs (uuid, queue, task, payload, status, attempts, run_at, started_at, finished_at, created_at, updated_at) {}",
                d.series(first, last, &select)
            ))
            .await;
        }
    }
    println!("seed: {} finished jobs ({:.1} s)", 2 * jobs, started.elapsed().as_secs_f64());
}

/// `seed-jobs`: only the finished jobs, into a database of any schema version (no migration).
async fn seed_jobs(args: &Args) {
    let db = Db::connect(&args.database_url, 2).await.expect("connect");
    let d = Dialect { postgres: matches!(db, Db::Postgres(_)) };
    seed_jobs_with(&db, &d, args.alerts).await;
    db.close().await;
}

/// The read scenarios: the default list, each filter and sort of the alert list, a deep page,
/// and the other list routes.
fn scenarios(alert_uuid: &str) -> Vec<String> {
    let mut paths: Vec<String> = [
        "/v1/alerts?page_size=50",
        "/v1/alerts?status=Open",
        "/v1/alerts?severity=High&source_name=sentinel",
        "/v1/alerts?tags=bench",
        "/v1/alerts?tags=phishing",
        "/v1/alerts?sort_by=severity",
        "/v1/alerts?sort_by=title&sort_order=asc",
        "/v1/alerts?sort_by=status",
        "/v1/alerts?sort_by=source_name",
        "/v1/alerts?sort_by=created_at&sort_order=asc",
        "/v1/alerts?enrichment_status=Failed",
        "/v1/alerts?is_enriched=false",
        "/v1/alerts?from_time=2020-01-01T00:00:00Z&to_time=2099-01-01T00:00:00Z",
        "/v1/alerts?status=Closed&severity=Critical&sort_by=occurred_at&sort_order=asc",
        "/v1/alerts?page=100",
        "/v1/alerts?page=10000",
        "/v1/detection-rules",
        "/v1/workflows",
        "/v1/agents",
        "/v1/workflow-runs",
        "/v1/workflow-approvals",
        "/v1/metrics/alerts",
        "/v1/metrics/workflows",
        "/v1/metrics/summary",
    ]
    .iter()
    .map(|p| (*p).to_owned())
    .collect();
    if !alert_uuid.is_empty() {
        paths.push(format!("/v1/alerts/{alert_uuid}/activity"));
        paths.push(format!("/v1/alerts/{alert_uuid}/indicators"));
    }
    if let Ok(only) = std::env::var("SCALE_PATHS") {
        paths = only.split_whitespace().map(str::to_owned).collect();
    }
    paths
}

fn create_key(database_url: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_calseta"))
        .args(["api-key", "create", "--name", "scale-bench", "--scopes", "admin"])
        .env("DATABASE_URL", database_url)
        .stderr(Stdio::null())
        .output()
        .expect("run calseta api-key create");
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout.lines().map(str::trim).find(|l| l.starts_with("cai_")).expect("the CLI printed a key").to_owned()
}

/// `wrk`'s "Requests/sec", 50% and 99% latency and non-2xx count.
fn run_wrk(url: &str, key: &str, connections: u32, seconds: u64) -> (f64, String, String, String) {
    let out = Command::new("wrk")
        .args(["-t2", &format!("-c{connections}"), &format!("-d{seconds}s"), "--latency", "-H", &format!("Authorization: Bearer {key}"), url])
        .output()
        .expect("wrk (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |prefix: &str| {
        text.lines().find_map(|l| l.trim().strip_prefix(prefix).map(|v| v.trim().to_owned())).unwrap_or_else(|| "-".into())
    };
    let rps = field("Requests/sec:").parse().unwrap_or(0.0);
    (rps, field("50%"), field("99%"), field("Non-2xx or 3xx responses:"))
}

async fn reads(args: &Args) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // The server runs role `api` only (no worker): bring the metrics rollups up to date first, as
    // the `rollup_alert_metrics` job keeps them in a running deployment.
    let db = Db::connect(&args.database_url, 2).await.expect("connect");
    db.migrate().await.expect("migrate");
    let started = Instant::now();
    let days = calseta::metrics::rollup::roll_up(&db, 100_000).await.expect("roll up");
    println!("reads: rolled up {days} days of alert metrics in {:.1} s", started.elapsed().as_secs_f64());
    db.close().await;
    let key = create_key(&args.database_url);
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_calseta"))
        .args(["serve", "--bind", "127.0.0.1:0", "--roles", "api"])
        .current_dir(dir.path())
        .env("DATABASE_URL", &args.database_url)
        .env("RATE_LIMIT_DEFAULT_PER_MINUTE", "0")
        .env("LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut base = String::new();
    while let Some(line) = stderr.next_line().await.unwrap() {
        if let Some(b) = line.strip_prefix("calseta listening on ") {
            base = b.to_owned();
            break;
        }
    }
    assert!(!base.is_empty(), "server did not start");
    tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });

    let client = reqwest::Client::new();
    let auth = format!("Bearer {key}");
    let first: serde_json::Value =
        client.get(format!("{base}/v1/alerts?page_size=1")).header("authorization", &auth).send().await.unwrap().json().await.unwrap();
    let alert_uuid = first["data"][0]["uuid"].as_str().unwrap_or_default().to_owned();
    println!("reads: {} alerts (meta.total of the default list), {} connections, {} s per scenario", first["meta"]["total"], args.connections, args.seconds);
    println!("{:<84} {:>9} {:>10} {:>10} {:>6}", "path", "req/s", "p50", "p99", "non2xx");
    for path in scenarios(&alert_uuid) {
        let url = format!("{base}{path}");
        // One request first: its status and time (cold) tell a broken scenario from a slow one.
        let started = Instant::now();
        let status = client.get(&url).header("authorization", &auth).send().await.map(|r| r.status().as_u16()).unwrap_or(0);
        let cold = started.elapsed();
        let (rps, p50, p99, non2xx) = run_wrk(&url, &key, args.connections, args.seconds);
        println!("{path:<84} {rps:>9.0} {p50:>10} {p99:>10} {non2xx:>6}   (first: {status} in {:.1} ms)", cold.as_secs_f64() * 1e3);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = child.kill().await;
}

fn main() {
    let args = parse_args();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        match args.command.as_str() {
            "seed" => seed(&args).await,
            "seed-jobs" => seed_jobs(&args).await,
            "reads" => reads(&args).await,
            _ => eprintln!("usage: cargo bench --bench scale -- seed|seed-jobs|reads [--alerts N] --database-url URL [--seconds S] [--connections C]"),
        }
    });
}
