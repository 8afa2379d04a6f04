//! One client connection: datafusion-postgres answers the protocol; around
//! each query we pin the build it reads and log what ran, for how long,
//! and how it ended.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use datafusion_postgres::pgwire;
use datafusion_postgres::{DfSessionService, Parser};
use futures::Sink;
use pgwire::api::auth::StartupHandler;
use pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use pgwire::api::portal::Portal;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::Response;
use pgwire::api::store::{Entry, PortalStore};
use pgwire::api::{ClientInfo, ClientPortalStore, DEFAULT_NAME, PgWireServerHandlers};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::extendedquery::{Describe, Execute, Parse};
use pgwire::messages::simplequery::Query;

use super::auth::LoggedStartup;
use super::builds::Builds;
use super::errors;

/// What datafusion-postgres stores for a prepared statement.
type Statement = <DfSessionService as ExtendedQueryHandler>::Statement;

/// The handlers of one connection.
pub struct Connection {
    pub startup: Arc<LoggedStartup>,
    pub queries: Arc<Queries>,
    pub cancel: Arc<DefaultCancelHandler>,
}

impl PgWireServerHandlers for Connection {
    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::clone(&self.startup)
    }

    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::clone(&self.queries)
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::clone(&self.queries)
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        Arc::clone(&self.cancel)
    }
}

/// Queries of one connection, answered by the shared session.
pub struct Queries {
    pub service: Arc<DfSessionService>,
    pub builds: Arc<Builds>,
    pub connection: u64,
}

impl Queries {
    /// Runs `work` pinned to the current build and logs how it went.
    async fn run<T>(
        &self,
        what: &str,
        sql: &str,
        work: impl Future<Output = PgWireResult<T>>,
    ) -> PgWireResult<T> {
        let build = self.builds.current();
        let id = build.id.clone();
        let started = Instant::now();
        let result = Builds::pinned(build, work).await.map_err(errors::classify);
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let conn = self.connection;
        let sql = loggable(sql);
        match &result {
            Ok(_) => super::log(format_args!(
                "conn {conn}: {what} ok in {ms:.1} ms (build {id}): {sql}"
            )),
            Err(e) => super::log(format_args!(
                "conn {conn}: {what} failed in {ms:.1} ms (build {id}): {e}: {sql}"
            )),
        }
        result
    }
}

/// A statement as the log shows it: on one line, cut at 300 characters,
/// and not at all when it mentions a password.
fn loggable(sql: &str) -> String {
    if sql.to_lowercase().contains("password") {
        return "<a statement that mentions a password: not logged>".to_string();
    }
    let line = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(300) {
        Some((cut, _)) => format!("{}...", &line[..cut]),
        None => line,
    }
}

#[async_trait]
impl SimpleQueryHandler for Queries {
    async fn on_query<C>(&self, client: &mut C, query: Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let sql = query.query.clone();
        self.run("query", &sql, self._on_query(client, query)).await
    }

    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        SimpleQueryHandler::do_query(&*self.service, client, query).await
    }
}

#[async_trait]
impl ExtendedQueryHandler for Queries {
    type Statement = Statement;
    type QueryParser = Parser;

    fn query_parser(&self) -> Arc<Parser> {
        ExtendedQueryHandler::query_parser(&*self.service)
    }

    async fn on_parse<C>(&self, client: &mut C, message: Parse) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        // Planning resolves the tables: pinned, but logged at execution.
        let sql = message.query.clone();
        let build = self.builds.current();
        let result = Builds::pinned(build, self.service.on_parse(client, message))
            .await
            .map_err(errors::classify);
        if let Err(e) = &result {
            super::log(format_args!(
                "conn {}: prepare failed: {e}: {}",
                self.connection,
                loggable(&sql)
            ));
        }
        result
    }

    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let build = self.builds.current();
        Builds::pinned(build, self._on_describe(client, message)).await
    }

    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = message.name.as_deref().unwrap_or(DEFAULT_NAME);
        let sql = match client.portal_store().get_portal(name) {
            Some(Entry::Value(portal)) => portal.statement.statement.0.clone(),
            _ => String::new(),
        };
        self.run("execute", &sql, self._on_execute(client, message))
            .await
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        ExtendedQueryHandler::do_query(&*self.service, client, portal, max_rows).await
    }
}

#[cfg(test)]
mod tests {
    use super::loggable;

    #[test]
    fn logged_statements_are_one_line_and_never_carry_a_password() {
        assert_eq!(loggable("SELECT 1\n  FROM t"), "SELECT 1 FROM t");
        assert!(!loggable("ALTER USER x PASSWORD 'hunter2'").contains("hunter2"));
        assert_eq!(loggable(&"x".repeat(400)).len(), 303);
    }
}
