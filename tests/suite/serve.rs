//! `vitals serve` with real clients: `psql`, Python's psycopg 3
//! (tests/clients/psycopg_client.py) and the PostgreSQL JDBC driver
//! (tests/clients/JdbcClient.java), against the real binary on a free port
//! of 127.0.0.1, serving a build of generated data.
//!
//! `.ci/run` installs what is missing: postgresql-client (psql), the
//! PostgreSQL JDBC driver (Debian's libpostgresql-jdbc-java) and
//! `psycopg[binary]`. Without them these tests fail, never skip.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

use super::common::repo;

const USER: &str = "analyst";
const PASSWORD: &str = "correct horse battery staple";

fn vitals() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vitals"))
}

fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Generated data (300 customers, 36 months) and a build of it, made once.
struct Published {
    dir: TempDir,
}

impl Published {
    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn target(&self) -> PathBuf {
        self.dir.path().join("out")
    }
}

fn published() -> &'static Published {
    static ONCE: OnceLock<Published> = OnceLock::new();
    ONCE.get_or_init(|| {
        let published = Published {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        run_ok(
            vitals()
                .args(["generate", "--customers", "300", "--out"])
                .arg(published.data()),
        );
        build(&published.data(), &published.target(), "2025-12-31");
        published
    })
}

fn build(data: &Path, target: &Path, as_of: &str) {
    run_ok(
        vitals()
            .args(["build", "--quiet", "--as-of", as_of, "--data"])
            .arg(data)
            .arg("--target")
            .arg(target)
            .current_dir(data.parent().expect("parent")),
    );
}

/// A running `vitals serve` and everything it logged.
struct Server {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Server {
    fn start(target: impl AsRef<std::ffi::OsStr>, extra: &[&str]) -> Server {
        Server::try_start(target, extra, &[("VITALS_SERVE_PASSWORD", PASSWORD)])
            .unwrap_or_else(|log| panic!("vitals serve did not start:\n{log}"))
    }

    /// Starts the server on a free port; Err(log) if it exits first.
    fn try_start(
        target: impl AsRef<std::ffi::OsStr>,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Server, String> {
        let mut cmd = vitals();
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--refresh-seconds",
            "0.2",
        ])
        .args(["--user", USER, "--target"])
        .arg(target)
        .args(extra)
        .env_remove("VITALS_SERVE_PASSWORD")
        .env_remove("VITALS_SERVE_USER")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn vitals serve");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().expect("stderr");
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split(" listening on ").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or_default();
                    let _ = tx.send(addr.to_string());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(addr) => Ok(Server {
                child,
                addr: addr.parse().expect("listen address"),
                log,
            }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(100));
                Err(log.lock().unwrap().clone())
            }
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn wait_for_log(&self, needle: &str, timeout: Duration) {
        let start = Instant::now();
        while !self.log().contains(needle) {
            assert!(
                start.elapsed() < timeout,
                "the server never logged `{needle}`:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A client command with libpq's environment set for this server.
    fn client(&self, program: &str, password: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("PGHOST", self.addr.ip().to_string())
            .env("PGPORT", self.addr.port().to_string())
            .env("PGUSER", USER)
            .env("PGPASSWORD", password)
            .env("PGDATABASE", "vitals")
            .env("PGCONNECT_TIMEOUT", "10")
            .env_remove("PGSSLMODE");
        cmd
    }

    fn psql(&self, args: &[&str]) -> Output {
        self.client("psql", PASSWORD)
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(args)
            .output()
            .expect("psql (postgresql-client) is installed")
    }

    fn psycopg(&self, args: &[&str]) -> Command {
        let mut cmd = self.client("python3", PASSWORD);
        cmd.arg(repo().join("tests/clients/psycopg_client.py"))
            .args(args);
        cmd
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A psql client (with its connection set) reads a published table.
fn assert_reads(mut psql: Command) {
    let out = psql
        .args([
            "-X",
            "-A",
            "-t",
            "-c",
            "SELECT count(*) > 0 FROM saas_kpis_monthly",
        ])
        .output()
        .expect("psql");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "t",
        "{}",
        text(&out)
    );
}

/// A client that was refused at login, as PostgreSQL words it.
fn assert_login_refused(out: &Output) {
    assert!(!out.status.success());
    assert!(
        text(out)
            .to_lowercase()
            .contains("password authentication failed"),
        "{}",
        text(out)
    );
}

fn build_id(target: &Path) -> String {
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(target.join("_manifest.json")).unwrap()).unwrap();
    manifest["build_id"].as_str().unwrap().to_string()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn json(out: &Output) -> Value {
    assert!(out.status.success(), "client failed:\n{}", text(out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// What `vitals query` (DataFusion on the Parquet files the manifest lists)
/// answers: the reference for what the server returns.
fn parquet_answer(target: &Path, sql: &str) -> String {
    let out = run_ok(vitals().args(["query", sql, "--target"]).arg(target));
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn published_tables(target: &Path) -> Vec<String> {
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(target.join("_manifest.json")).unwrap()).unwrap();
    manifest["tables"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

#[test]
fn psql_lists_the_tables_and_reads_the_parquet_numbers() {
    let published = published();
    let server = Server::start(published.target(), &[]);

    let out = server.psql(&["-c", r"\dt"]);
    assert!(out.status.success(), "{}", text(&out));
    let listed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split('|').nth(1).map(str::to_string))
        .collect();
    assert_eq!(listed, published_tables(&published.target()), "\\dt");

    let out = server.psql(&["-c", r"\d saas_kpis_monthly"]);
    assert!(out.status.success(), "{}", text(&out));
    let described = String::from_utf8_lossy(&out.stdout).to_string();
    for column in [
        "month|date",
        "segment|text",
        "nrr|double precision",
        "net_negative_churn|boolean",
    ] {
        assert!(
            described.contains(column),
            "\\d lacks {column}:\n{described}"
        );
    }
    let out = server.psql(&["-c", r"\d mrr_movements_monthly"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("customers_end|bigint"),
        "{}",
        text(&out)
    );

    // Every row of a table with NULLs, DOUBLEs and BOOLEANs, against the
    // same query on the Parquet files.
    let sql = "SELECT month, coalesce(segment, 'TOTAL') AS segment, round(nrr, 9) AS nrr, \
               round(arpa, 6) AS arpa, net_negative_churn, nrr IS NULL AS nrr_null \
               FROM saas_kpis_monthly ORDER BY month, segment";
    let out = server.psql(&["-F", ",", "-c", sql]);
    assert!(out.status.success(), "{}", text(&out));
    let served: Vec<Vec<String>> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    let reference: Vec<Vec<String>> = parquet_answer(&published.target(), sql)
        .lines()
        .filter(|l| l.starts_with("| "))
        .skip(1)
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect();
    assert_eq!(served.len(), reference.len(), "row count");
    assert!(served.len() > 100, "too few rows to mean anything");
    for (s, r) in served.iter().zip(&reference) {
        // psql prints NULL as empty, booleans as t/f and 0.0 as 0.
        let same = |served: &str, parquet: &str| match (served, parquet) {
            ("t", "true") | ("f", "false") => true,
            _ => match (served.parse::<f64>(), parquet.parse::<f64>()) {
                (Ok(a), Ok(b)) => a == b,
                _ => served == parquet,
            },
        };
        assert_eq!(s.len(), r.len(), "{s:?} vs {r:?}");
        assert!(
            s.iter().zip(r).all(|(a, b)| same(a, b)),
            "served row differs from the Parquet files: {s:?} vs {r:?}"
        );
    }
    // The log names the query, never the password.
    server.wait_for_log(
        "FROM saas_kpis_monthly ORDER BY month",
        Duration::from_secs(5),
    );
    assert!(!server.log().contains(PASSWORD));
}

#[test]
fn psycopg_binds_parameters_gets_types_and_cannot_write() {
    let published = published();
    let server = Server::start(published.target(), &[]);
    let out = server.psycopg(&["check"]).output().expect("python3");
    let got = json(&out);

    let reference = parquet_answer(
        &published.target(),
        "SELECT mrr_end, customers_end FROM mrr_movements_monthly \
         WHERE month = DATE '2024-06-01' AND segment IS NULL",
    );
    let total = &got["total_2024_06"];
    let mrr = total["mrr_end"].as_f64().unwrap();
    assert!(
        reference.contains(&format!("{mrr}")) || reference.contains(&format!("{mrr:.1}")),
        "mrr_end {mrr} not in\n{reference}"
    );
    assert!(reference.contains(&format!("| {} ", total["customers_end"])));
    // DATE, TEXT, INT8, FLOAT8 as PostgreSQL's type oids.
    assert_eq!(got["types"], serde_json::json!([1082, 25, 20, 701]));
    assert_eq!(got["smb_rows"], 2);
    assert_eq!(got["missing_table"], "UndefinedTable");
    for (sql, state) in got["refused"].as_object().unwrap() {
        assert_eq!(state, "25006", "{sql} was not refused");
    }
    let columns: Vec<&str> = got["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c[0].as_str().unwrap())
        .collect();
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(published.target().join("_manifest.json")).unwrap())
            .unwrap();
    let published_columns: Vec<&str> = manifest["tables"]["saas_kpis_monthly"]["schema"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, published_columns, "information_schema.columns");
    // PostgreSQL's type names, not Arrow's.
    let types: Vec<String> = got["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{} {}", c[0].as_str().unwrap(), c[1].as_str().unwrap()))
        .collect();
    for expected in [
        "month date",
        "segment text",
        "nrr double precision",
        "net_negative_churn boolean",
    ] {
        assert!(types.contains(&expected.to_string()), "{types:?}");
    }
    let mut tables: Vec<String> = published_tables(&published.target());
    tables.sort();
    assert_eq!(got["pg_tables"], serde_json::json!(tables));

    // Refused writes changed nothing.
    assert_eq!(published_tables(&published.target()).len(), tables.len());
    let log = server.log();
    assert!(
        log.contains(&format!("user \"{USER}\" logged in (plain)")),
        "{log}"
    );
    assert!(log.contains("INSERT is refused"), "{log}");
}

#[test]
fn jdbc_prepares_streams_and_is_refused_a_drop() {
    let published = published();
    let server = Server::start(published.target(), &[]);
    let jar = ["/usr/share/java/postgresql.jar"]
        .into_iter()
        .map(PathBuf::from)
        .chain(std::env::var_os("VITALS_PGJDBC").map(PathBuf::from))
        .find(|p| p.exists())
        .expect("the PostgreSQL JDBC driver (apt-get install libpostgresql-jdbc-java)");
    let url = format!(
        "jdbc:postgresql://{}:{}/vitals?sslmode=disable",
        server.addr.ip(),
        server.addr.port()
    );
    let out = server
        .client("java", PASSWORD)
        .arg("-cp")
        .arg(&jar)
        .arg(repo().join("tests/clients/JdbcClient.java"))
        .args([url.as_str(), USER])
        .output()
        .expect("java");
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("types=date,text,float8,int8"), "{said}");
    assert!(said.contains("month=2024-06-01"), "{said}");
    assert!(said.contains("segment_null=true"), "{said}");
    let reference = parquet_answer(
        &published.target(),
        "SELECT count(*) AS n FROM mrr_movements_monthly",
    );
    let rows = said
        .lines()
        .find_map(|l| l.strip_prefix("fetched_rows="))
        .expect("fetched_rows");
    assert!(
        reference.contains(&format!("| {rows} ")),
        "{rows} vs {reference}"
    );
    assert!(said.contains("drop=25006"), "{said}");
    assert!(said.contains(&format!("rows_after={rows}")), "{said}");
    let mut tables = published_tables(&published.target());
    tables.sort();
    assert!(
        said.contains(&format!("tables={}", tables.join(","))),
        "{said}"
    );
}

#[test]
fn a_wrong_password_or_user_is_refused() {
    let published = published();
    let server = Server::start(published.target(), &[]);
    let out = server
        .client("psql", "not the password")
        .args(["-X", "-c", "SELECT 1"])
        .output()
        .expect("psql");
    assert_login_refused(&out);
    let out = server
        .client("psql", PASSWORD)
        .args(["-X", "-U", "someone_else", "-c", "SELECT 1"])
        .output()
        .expect("psql");
    assert_login_refused(&out);
    server.wait_for_log(
        "login failed for user \"someone_else\"",
        Duration::from_secs(5),
    );
    assert!(!server.log().contains("not the password"));
}

#[test]
fn no_password_no_server() {
    let published = published();
    let log = Server::try_start(published.target(), &[], &[])
        .err()
        .expect("started without a password");
    assert!(
        log.contains("no password: set VITALS_SERVE_PASSWORD"),
        "{log}"
    );

    let out = vitals()
        .args([
            "serve",
            "--insecure-no-auth",
            "--listen",
            "0.0.0.0:0",
            "--target",
        ])
        .arg(published.target())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("loopback address only"));

    // On loopback, an explicit choice.
    let server = Server::try_start(published.target(), &["--insecure-no-auth"], &[])
        .expect("--insecure-no-auth on loopback");
    assert_reads(server.client("psql", ""));
}

#[test]
fn connections_over_the_limit_are_refused() {
    let published = published();
    let server = Server::start(published.target(), &["--max-connections", "2"]);
    // Two clients hold their connections while a third tries.
    let mut holders: Vec<Child> = (0..2)
        .map(|_| {
            server
                .client("psql", PASSWORD)
                .args(["-X", "-c", "SELECT 1", "-c", r"\! sleep 5"])
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    server.wait_for_log("conn 2: user", Duration::from_secs(20));
    let out = server.psql(&["-c", "SELECT 1"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("too many connections"),
        "{}",
        text(&out)
    );
    for h in &mut holders {
        assert!(h.wait().unwrap().success());
    }
    // Freed: a new client gets in.
    let out = server.psql(&["-c", "SELECT 1"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn tls_only_when_a_certificate_is_given() {
    let published = published();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    run_ok(
        Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=localhost", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(Stdio::null()),
    );
    let server = Server::start(
        published.target(),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let mut psql = server.client("psql", PASSWORD);
    psql.env("PGSSLMODE", "require");
    assert_reads(psql);
    server.wait_for_log("logged in (TLS)", Duration::from_secs(5));
    let out = server
        .client("psql", PASSWORD)
        .env("PGSSLMODE", "disable")
        .args(["-X", "-c", "SELECT 1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("TLS connections only"),
        "{}",
        text(&out)
    );
}

/// A new build becomes visible to the next query of a connected client,
/// while a query that started before reads only the old build.
#[test]
fn a_new_build_is_seen_by_new_queries_only() {
    let published = published();
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out");
    build(&published.data(), &target, "2025-12-31");
    let server = Server::start(&target, &[]);
    let count = "SELECT count(*) FROM mrr_movements_monthly";
    let before = server.psql(&["-c", count]);
    let before = String::from_utf8_lossy(&before.stdout).trim().to_string();
    let old_build = build_id(&target);

    // A long query: its result is far larger than the socket buffers, and
    // the client stops reading after the first row until released.
    let flag = dir.path().join("release");
    let mut long = server
        .psycopg(&["stream", flag.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut started = String::new();
    BufReader::new(long.stderr.take().unwrap())
        .read_line(&mut started)
        .unwrap();
    assert_eq!(started.trim(), "started");

    // Publish a build with fewer months, and wait until the server has it.
    build(&published.data(), &target, "2025-06-30");
    let new_build = build_id(&target);
    assert_ne!(old_build, new_build);
    server.wait_for_log(
        &format!("serving build {new_build}"),
        Duration::from_secs(30),
    );
    let after = server.psql(&["-c", count]);
    let after = String::from_utf8_lossy(&after.stdout).trim().to_string();
    assert!(
        after.parse::<u64>().unwrap() < before.parse::<u64>().unwrap(),
        "{after} vs {before}"
    );

    // The long query ends on the old build's rows alone.
    std::fs::write(&flag, "go").unwrap();
    let out = long.wait_with_output().unwrap();
    let got = json(&out);
    let n: u64 = before.parse().unwrap();
    assert_eq!(got["rows"].as_u64().unwrap(), n * n * 10);
    // The same client's next query reads the new build.
    assert_eq!(
        got["next_query_rows"].as_u64().unwrap(),
        after.parse::<u64>().unwrap()
    );
    let old_sum = parquet_answer_sum(&target, &old_build);
    let sum = got["sum"].as_f64().unwrap();
    let expected = old_sum * (n * 10) as f64;
    assert!(
        (sum - expected).abs() <= 1e-6 * sum.abs().max(1.0),
        "{sum} vs {expected} (old build)"
    );
}

/// sum(mrr_end) of mrr_movements_monthly in an older build, read from its
/// history manifest.
fn parquet_answer_sum(target: &Path, build_id: &str) -> f64 {
    let history = target.join("_builds").join(format!("{build_id}.json"));
    let manifest: Value = serde_json::from_slice(&std::fs::read(&history).unwrap()).unwrap();
    let files: Vec<String> = manifest["tables"]["mrr_movements_monthly"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| target.join(f.as_str().unwrap()).display().to_string())
        .collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use datafusion::prelude::{ParquetReadOptions, SessionContext};
        let ctx = SessionContext::new();
        let df = ctx
            .read_parquet(files, ParquetReadOptions::default())
            .await
            .unwrap();
        ctx.register_table("t", df.into_view()).unwrap();
        let batches = ctx
            .sql("SELECT sum(coalesce(mrr_end, 0)) FROM t")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let col = batches[0].column(0);
        datafusion::arrow::array::AsArray::as_primitive::<
            datafusion::arrow::datatypes::Float64Type,
        >(col.as_ref())
        .value(0)
    })
}

/// 50 clients at once, 200 queries each: no error, every answer checked.
#[test]
fn fifty_clients_two_hundred_queries_each() {
    let published = published();
    let server = Server::start(published.target(), &[]);
    let out = server
        .psycopg(&["load", "50", "200"])
        .output()
        .expect("python3");
    let got = json(&out);
    assert_eq!(got["failures"], serde_json::json!([]), "{got}");
    assert_eq!(got["queries"], 10_000);
    eprintln!("load: {got}");
}

/// A query that needs more than `--memory-limit` fails with SQLSTATE 53200;
/// the server and the connection go on.
#[test]
fn a_query_over_the_memory_limit_fails_alone() {
    let published = published();
    let server = Server::start(published.target(), &["--memory-limit", "256KB"]);
    let out = server.psql(&[
        "-v",
        "VERBOSITY=verbose",
        "-c",
        "SELECT cardinality(array_agg(a.customer_id || CAST(b.month AS TEXT))) \
         FROM customer_health a CROSS JOIN (SELECT month FROM customer_health LIMIT 100) b",
    ]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("53200: Resources exhausted"),
        "{}",
        text(&out)
    );
    assert_reads(server.client("psql", PASSWORD));
}

/// The same server over a target on S3 (SeaweedFS): the tables are read
/// from the store, with the store's credentials from the environment.
#[test]
fn serves_a_build_published_to_s3() {
    let published = published();
    let sw = super::seaweed::shared();
    let target = sw.url("serve/out");
    let env = sw.env();
    run_ok(
        vitals()
            .args(["build", "--quiet", "--as-of", "2025-12-31", "--data"])
            .arg(published.data())
            .args(["--target", &target])
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(published.dir.path()),
    );
    let mut vars: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    vars.push(("VITALS_SERVE_PASSWORD", PASSWORD));
    let server = Server::try_start(&target, &[], &vars)
        .unwrap_or_else(|log| panic!("vitals serve on S3 did not start:\n{log}"));
    let count = "SELECT count(*) FROM mrr_movements_monthly";
    let out = server.psql(&["-c", count]);
    assert!(out.status.success(), "{}", text(&out));
    // The same data built locally: the same rows.
    let reference = parquet_answer(&published.target(), count);
    let n = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(reference.contains(&format!("| {n} ")), "{n} vs {reference}");
    assert!(!server.log().contains(super::seaweed::SECRET_KEY));
}
