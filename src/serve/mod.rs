//! `vitals serve`: the published tables over the Postgres wire protocol,
//! for BI tools and drivers, read-only.
//!
//! ```text
//!  client --TLS?--> accept loop (connection limit)
//!                     |  auth::LoggedStartup     SCRAM-SHA-256 or refuse
//!                     v
//!                   handlers::Queries         pin the current build, log
//!                     |  readonly::ReadOnly    refuse writes and settings
//!                     v
//!                   datafusion-postgres       pg_catalog, types, protocol
//!                     |  builds::PublishedSchema   tables of the pinned build
//!                     v
//!                   Parquet files of the build (_manifest.json)
//! ```

mod auth;
mod builds;
mod errors;
mod handlers;
mod information_schema;
mod readonly;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use datafusion::execution::disk_manager::DiskManagerBuilder;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::setup_pg_catalog;
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::pgwire::api::ConnectionManager;
use datafusion_postgres::pgwire::api::cancel::DefaultCancelHandler;
use datafusion_postgres::pgwire::tokio::process_socket;
use datafusion_postgres::{DfSessionService, QueryHook};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

pub use auth::Credentials;
use auth::{LoggedStartup, ScramSecret, Startup};
use builds::{Builds, PublishedSchema};
use handlers::{Connection, Queries};

use crate::error::{Result, VitalsError};
use crate::storage::Location;

/// Who may log in.
#[derive(Debug, Clone)]
pub enum Login {
    Password(Credentials),
    /// No authentication: only on a loopback address.
    Insecure,
}

/// A certificate chain and its private key, in PEM files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub target: Location,
    pub listen: SocketAddr,
    pub login: Login,
    /// With TLS, plain connections are refused.
    pub tls: Option<TlsFiles>,
    pub max_connections: usize,
    /// Memory all running queries may hold together before they spill (or
    /// fail with an error when they cannot).
    pub memory_limit: usize,
    /// How often the manifest is read for a new build.
    pub refresh: Duration,
}

/// A log line on stderr, with a UTC timestamp.
pub fn log(message: std::fmt::Arguments) {
    eprintln!(
        "{} {message}",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ")
    );
}

/// Serves until SIGINT or SIGTERM.
pub async fn serve(options: ServeOptions) -> Result<()> {
    if matches!(options.login, Login::Insecure) && !options.listen.ip().is_loopback() {
        return Err(VitalsError::Usage(format!(
            "--insecure-no-auth is allowed on a loopback address only, not {}",
            options.listen
        )));
    }
    let tls = options.tls.as_ref().map(tls_acceptor).transpose()?;
    let ctx = session(options.memory_limit)?;
    options.target.register(&ctx);
    let builds = Builds::open(&ctx, options.target.clone()).await?;
    let catalog = ctx
        .catalog("datafusion")
        .ok_or_else(|| VitalsError::Data("the session has no default catalog".to_string()))?;
    catalog
        .register_schema(
            "public",
            Arc::new(PublishedSchema {
                builds: Arc::clone(&builds),
            }),
        )
        .map_err(|e| VitalsError::data("registering the published tables", e))?;
    catalog
        .register_schema(
            "information_schema",
            Arc::new(information_schema::PgInformationSchema::new(Arc::clone(
                ctx.state().catalog_list(),
            ))),
        )
        .map_err(|e| VitalsError::data("registering information_schema", e))?;
    setup_pg_catalog(&ctx, "datafusion", EmptyContextProvider)
        .map_err(|e| VitalsError::data("setting up pg_catalog", e))?;
    let hooks: Vec<Arc<dyn QueryHook>> = vec![
        Arc::new(readonly::ReadOnly),
        Arc::new(CursorStatementHook),
        Arc::new(SetShowHook),
        Arc::new(TransactionStatementHook),
    ];
    let service = Arc::new(DfSessionService::new_with_hooks(
        Arc::new(ctx.clone()),
        hooks,
    ));
    builds.watch(ctx, options.refresh);

    let listener = TcpListener::bind(options.listen)
        .await
        .map_err(|e| VitalsError::Usage(format!("cannot listen on {}: {e}", options.listen)))?;
    let local = listener
        .local_addr()
        .map_err(|e| VitalsError::Data(format!("listening socket: {e}")))?;
    let secret = match &options.login {
        Login::Password(credentials) => Some(Arc::new(ScramSecret::new(credentials))),
        Login::Insecure => None,
    };
    log(format_args!(
        "listening on {local} ({}, {}), serving build {} of {}",
        if tls.is_some() { "TLS only" } else { "no TLS" },
        match &options.login {
            Login::Password(c) => format!("user {:?} with SCRAM-SHA-256", c.user),
            Login::Insecure => "NO AUTHENTICATION".to_string(),
        },
        builds.current().id,
        options.target.describe(""),
    ));
    if tls.is_none() && !local.ip().is_loopback() {
        log(format_args!(
            "warning: no TLS on a non-loopback address: passwords stay secret (SCRAM) but the data does not"
        ));
    }

    let connections = Arc::new(ConnectionManager::new());
    let cancel = Arc::new(DefaultCancelHandler::new(Arc::clone(&connections)));
    let limit = Arc::new(Semaphore::new(options.max_connections));
    let cert_pem = channel_binding(&options, secret.as_ref(), &connections);
    let mut shutdown = std::pin::pin!(shutdown_signal());
    let mut next_id = 0u64;
    loop {
        let (socket, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, a reset before accept: the
                    // listener itself is fine.
                    log(format_args!("accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        next_id += 1;
        let id = next_id;
        let _ = socket.set_nodelay(true);
        let permit = Arc::clone(&limit).try_acquire_owned().ok();
        log(format_args!("conn {id}: from {peer}"));
        let startup = match (&permit, &secret) {
            (None, _) => Startup::Refuse(
                "53300",
                format!(
                    "too many connections: this server allows {}",
                    options.max_connections
                ),
            ),
            (Some(_), Some(secret)) => {
                match Startup::scram(secret, cert_pem.as_deref(), &connections) {
                    Ok(startup) => startup,
                    Err(e) => Startup::Refuse("XX000", format!("cannot set up SCRAM: {e}")),
                }
            }
            (Some(_), None) => Startup::Open(Arc::clone(&connections)),
        };
        let handlers = Arc::new(Connection {
            startup: Arc::new(LoggedStartup {
                startup,
                connection: id,
                tls_required: tls.is_some(),
            }),
            queries: Arc::new(Queries {
                service: Arc::clone(&service),
                builds: Arc::clone(&builds),
                connection: id,
            }),
            cancel: Arc::clone(&cancel),
        });
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match process_socket(socket, tls, handlers).await {
                Ok(()) => log(format_args!("conn {id}: closed")),
                Err(e) => log(format_args!("conn {id}: closed: {e}")),
            }
        });
    }
    log(format_args!("shutting down"));
    Ok(())
}

/// The certificate that SCRAM-SHA-256-PLUS binds logins to, when TLS is on
/// and pgwire can read it; without it clients use plain SCRAM-SHA-256.
fn channel_binding(
    options: &ServeOptions,
    secret: Option<&Arc<ScramSecret>>,
    connections: &Arc<ConnectionManager>,
) -> Option<Vec<u8>> {
    let pem = std::fs::read(&options.tls.as_ref()?.cert).ok()?;
    match Startup::scram(secret?, Some(&pem), connections) {
        Ok(_) => Some(pem),
        Err(e) => {
            log(format_args!(
                "warning: no SCRAM channel binding (SCRAM-SHA-256-PLUS) with this certificate: {e}"
            ));
            None
        }
    }
}

/// One session for all connections: tables resolve per query (see
/// `builds`), and the memory pool bounds all queries together. Its
/// information_schema is ours (PostgreSQL's type names), so DataFusion's
/// own is off.
fn session(memory_limit: usize) -> Result<SessionContext> {
    let mut config = SessionConfig::new()
        .with_information_schema(false)
        .with_default_catalog_and_schema("datafusion", "public");
    crate::execute::apply_env_overrides(config.options_mut())?;
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(memory_limit)))
        .with_disk_manager_builder(DiskManagerBuilder::default())
        .build_arc()
        .map_err(|e| VitalsError::data("cannot set up the query runtime", e))?;
    let ctx = SessionContext::new_with_config_rt(config, runtime);
    crate::execute::register_exceptions(&ctx);
    Ok(ctx)
}

fn tls_acceptor(files: &TlsFiles) -> Result<TlsAcceptor> {
    use tokio_rustls::rustls;
    let fail = |what: &str, path: &PathBuf, e: &dyn std::fmt::Display| {
        VitalsError::Usage(format!("{what} {}: {e}", path.display()))
    };
    // Several crates may link rustls: name the provider once, here.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert_pem = std::fs::read(&files.cert).map_err(|e| fail("--tls-cert", &files.cert, &e))?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| fail("--tls-cert", &files.cert, &e))?;
    if certs.is_empty() {
        return Err(fail(
            "--tls-cert",
            &files.cert,
            &"no certificate in the file",
        ));
    }
    let key_pem = std::fs::read(&files.key).map_err(|e| fail("--tls-key", &files.key, &e))?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| fail("--tls-key", &files.key, &e))?
        .ok_or_else(|| fail("--tls-key", &files.key, &"no private key in the file"))?;
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| fail("--tls-cert/--tls-key", &files.cert, &e))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {},
                    _ = tokio::signal::ctrl_c() => {},
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
