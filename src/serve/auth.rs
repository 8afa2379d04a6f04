//! Who may connect: one user with a password, checked by SCRAM-SHA-256 (the
//! password never crosses the wire, and the server keeps only its salted
//! hash), or nobody checked at all when the operator asked for it on
//! loopback. Every connection's startup is logged, without secrets.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion_postgres::pgwire;
use futures::Sink;
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::sasl::scram::{ScramAuth, gen_salted_password, random_nonce};
use pgwire::api::auth::{
    AuthSource, DefaultServerParameterProvider, LoginInfo, Password, StartupHandler,
};
use pgwire::api::{ClientInfo, ConnectionManager, PgWireConnectionState};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};

/// SCRAM's iteration count: the RFC's minimum, as PostgreSQL uses.
const ITERATIONS: usize = 4096;

/// The one login the server accepts.
#[derive(Clone)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user)
            .field("password", &"<hidden>")
            .finish()
    }
}

/// The user and the salted hash of the password: what SCRAM verifies the
/// client's proof against.
#[derive(Debug)]
pub struct ScramSecret {
    user: String,
    salt: Vec<u8>,
    salted: Vec<u8>,
    /// Answered for any other user name, so that a wrong user fails the
    /// same way, after the same work, as a wrong password.
    decoy: Vec<u8>,
}

impl ScramSecret {
    pub fn new(credentials: &Credentials) -> ScramSecret {
        let salt = random_nonce().into_bytes();
        let salted = gen_salted_password(&credentials.password, &salt, ITERATIONS);
        let decoy = gen_salted_password(&random_nonce(), &salt, ITERATIONS);
        ScramSecret {
            user: credentials.user.clone(),
            salt,
            salted,
            decoy,
        }
    }
}

#[async_trait]
impl AuthSource for ScramSecret {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        let hash = if login.user() == Some(self.user.as_str()) {
            &self.salted
        } else {
            &self.decoy
        };
        Ok(Password::new(Some(self.salt.clone()), hash.clone()))
    }
}

/// What the server tells every client at startup: a read-only server that
/// grants no superuser.
fn server_parameters() -> Arc<DefaultServerParameterProvider> {
    let mut params = DefaultServerParameterProvider::default();
    params.is_superuser = false;
    params.default_transaction_read_only = true;
    Arc::new(params)
}

/// How a connection's startup goes.
pub enum Startup {
    /// SCRAM-SHA-256 against the configured login.
    Scram(SASLAuthStartupHandler<DefaultServerParameterProvider>),
    /// No check (`--insecure-no-auth`, loopback only).
    Open(Arc<ConnectionManager>),
    /// Refused before any check with this SQLSTATE and message (too many
    /// connections).
    Refuse(&'static str, String),
}

impl Startup {
    pub fn scram(
        secret: &Arc<ScramSecret>,
        cert_pem: Option<&[u8]>,
        connections: &Arc<ConnectionManager>,
    ) -> PgWireResult<Startup> {
        let mut scram = ScramAuth::new(Arc::clone(secret) as Arc<dyn AuthSource>);
        scram.set_iterations(ITERATIONS);
        if let Some(pem) = cert_pem {
            // SCRAM-SHA-256-PLUS: the proof is bound to our TLS certificate.
            scram.configure_certificate(pem)?;
        }
        Ok(Startup::Scram(
            SASLAuthStartupHandler::new(server_parameters())
                .with_scram(scram)
                .with_connection_manager(Arc::clone(connections)),
        ))
    }
}

/// `--insecure-no-auth`: pgwire's startup without a password.
struct OpenStartup(Arc<ConnectionManager>);

#[async_trait]
impl NoopStartupHandler for OpenStartup {
    fn connection_manager(&self) -> Option<Arc<ConnectionManager>> {
        Some(Arc::clone(&self.0))
    }
}

/// A startup handler that logs how the connection's startup ended.
pub struct LoggedStartup {
    pub startup: Startup,
    pub connection: u64,
    /// A server with TLS refuses plain connections.
    pub tls_required: bool,
}

#[async_trait]
impl StartupHandler for LoggedStartup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let conn = self.connection;
        if self.tls_required
            && !client.is_secure()
            && matches!(message, PgWireFrontendMessage::Startup(_))
        {
            super::log(format_args!(
                "conn {conn}: refused: a plain connection to a server that requires TLS"
            ));
            return Err(fatal(
                "28000",
                "this server accepts TLS connections only (sslmode=require)",
            ));
        }
        let result = match &self.startup {
            Startup::Scram(handler) => handler.on_startup(client, message).await,
            Startup::Open(connections) => {
                OpenStartup(Arc::clone(connections))
                    .on_startup(client, message)
                    .await
            }
            Startup::Refuse(code, message) => {
                super::log(format_args!("conn {conn}: refused: {message}"));
                return Err(fatal(code, message));
            }
        };
        let user = client
            .metadata()
            .get(pgwire::api::METADATA_USER)
            .cloned()
            .unwrap_or_default();
        match &result {
            Ok(()) if matches!(client.state(), PgWireConnectionState::ReadyForQuery) => {
                let tls = if client.is_secure() { "TLS" } else { "plain" };
                super::log(format_args!("conn {conn}: user {user:?} logged in ({tls})"));
            }
            Ok(()) => {}
            Err(e) => super::log(format_args!(
                "conn {conn}: login failed for user {user:?}: {e}"
            )),
        }
        result
    }
}

/// A FATAL error: the connection ends after it.
pub fn fatal(code: &str, message: &str) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".to_string(),
        code.to_string(),
        message.to_string(),
    )))
}
