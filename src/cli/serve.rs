use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::parse_bytes;
use crate::error::{Result, VitalsError};
use crate::serve::{Credentials, Login, ServeOptions, TlsFiles, serve};
use crate::storage::{Location, StorageOptions};

/// Where the password comes from when no file is given.
const PASSWORD_VAR: &str = "VITALS_SERVE_PASSWORD";

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Where builds are published: a path or a URL (s3://bucket/prefix, ...).
    #[arg(long, default_value = "target/vitals")]
    pub target: String,
    /// Address and port to listen on (port 0: any free port, logged).
    #[arg(long, default_value = "127.0.0.1:5433")]
    pub listen: SocketAddr,
    /// The user clients log in as.
    #[arg(long, env = "VITALS_SERVE_USER", default_value = "vitals")]
    pub user: String,
    /// A file whose first line is the password [default: the environment
    /// variable VITALS_SERVE_PASSWORD].
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// Accept any client without a password: on a loopback address only.
    #[arg(long, conflicts_with = "password_file")]
    pub insecure_no_auth: bool,
    /// TLS certificate chain (PEM); with it, plain connections are refused.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Connections served at once; more are refused (SQLSTATE 53300).
    #[arg(long, default_value_t = 100)]
    pub max_connections: usize,
    /// Memory all running queries may hold together, e.g. 2GB.
    #[arg(long, value_parser = parse_bytes, default_value = "2GB")]
    pub memory_limit: usize,
    /// Seconds between two reads of the manifest for a new build.
    #[arg(long, default_value_t = 2.0)]
    pub refresh_seconds: f64,
}

pub async fn run(args: ServeArgs) -> Result<()> {
    let login = if args.insecure_no_auth {
        Login::Insecure
    } else {
        Login::Password(Credentials {
            password: password(&args)?,
            user: args.user.clone(),
        })
    };
    if !(args.refresh_seconds > 0.0 && args.refresh_seconds.is_finite()) {
        return Err(VitalsError::Usage(
            "--refresh-seconds must be a positive number".to_string(),
        ));
    }
    if args.max_connections == 0 {
        return Err(VitalsError::Usage(
            "--max-connections must be at least 1".to_string(),
        ));
    }
    // A reader has no catalog: the store's settings come from the
    // environment (AWS_ENDPOINT_URL, ...).
    let target = Location::parse(
        &args.target,
        std::path::Path::new("."),
        &StorageOptions::default(),
    )?;
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        _ => None,
    };
    serve(ServeOptions {
        target,
        listen: args.listen,
        login,
        tls,
        max_connections: args.max_connections,
        memory_limit: args.memory_limit,
        refresh: Duration::from_secs_f64(args.refresh_seconds),
    })
    .await
}

/// The password from `--password-file`, else from VITALS_SERVE_PASSWORD;
/// without one the server does not start.
fn password(args: &ServeArgs) -> Result<String> {
    let password = match &args.password_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                VitalsError::Usage(format!("--password-file {}: {e}", path.display()))
            })?;
            text.lines().next().unwrap_or_default().to_string()
        }
        None => std::env::var(PASSWORD_VAR).unwrap_or_default(),
    };
    if password.is_empty() {
        return Err(VitalsError::Usage(format!(
            "no password: set {PASSWORD_VAR} or give --password-file FILE \
             (or --insecure-no-auth, on a loopback address only)"
        )));
    }
    Ok(password)
}
