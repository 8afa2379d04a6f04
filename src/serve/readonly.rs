//! The server is read-only. Every statement is checked against what a BI
//! tool or a driver needs to read (queries, EXPLAIN, SHOW, cursors,
//! transactions, the client's own SET variables) before anything plans or
//! runs it; the rest (INSERT, COPY, CREATE, DROP, SET of server settings,
//! ...) is refused with SQLSTATE 25006, as PostgreSQL refuses writes in a
//! read-only transaction.
//!
//! The session is shared by all connections, so a SET that reached
//! DataFusion would change every client's queries: only variables that
//! live in the client's own connection are let through.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::Schema;
use datafusion::common::{DFSchema, ParamValues};
use datafusion::logical_expr::{EmptyRelation, LogicalPlan};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Query, Set, SetExpr, Statement};
use datafusion_postgres::QueryHook;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire;
use pgwire::api::ClientInfo;
use pgwire::api::results::{Response, Tag};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};

/// Variables a client may SET: they change how its own connection talks
/// (datafusion-postgres keeps them per connection), never the shared
/// session.
const CLIENT_VARIABLES: &[&str] = &[
    "statement_timeout",
    "datestyle",
    "bytea_output",
    "intervalstyle",
    "application_name",
    "extra_float_digits",
    "search_path",
];

/// What to do with a statement.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// Let the next hooks, then DataFusion, handle it.
    Pass,
    /// Answer it here with this command tag; it changes nothing we serve
    /// (a time zone: no published column is a timestamp).
    Acknowledge(&'static str),
    /// Refuse it, saying why.
    Refuse(String),
}

fn verdict(statement: &Statement) -> Verdict {
    match statement {
        Statement::Query(query) => query_verdict(query),
        Statement::Explain { statement, .. } => verdict(statement),
        Statement::ExplainTable { .. }
        | Statement::ShowVariable { .. }
        | Statement::ShowStatus { .. }
        | Statement::ShowVariables { .. }
        | Statement::ShowCatalogs { .. }
        | Statement::ShowSchemas { .. }
        | Statement::ShowTables { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowFunctions { .. }
        | Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Fetch { .. }
        | Statement::Close { .. } => Verdict::Pass,
        Statement::Declare { stmts } => stmts
            .iter()
            .filter_map(|d| d.for_query.as_deref())
            .map(query_verdict)
            .find(|v| *v != Verdict::Pass)
            .unwrap_or(Verdict::Pass),
        // Prepared statements live in the client's connection; there is
        // no plan cache to empty.
        Statement::Deallocate { .. } => Verdict::Acknowledge("DEALLOCATE"),
        Statement::Discard { .. } => Verdict::Acknowledge("DISCARD ALL"),
        // Connection pools reset a connection before handing it on; the
        // only settings a client can change are its own.
        Statement::Reset(_) => Verdict::Acknowledge("RESET"),
        Statement::Set(set) => set_verdict(set),
        other => Verdict::Refuse(format!(
            "{} is refused: vitals serve is read-only (`vitals build` publishes the tables)",
            command(other)
        )),
    }
}

/// A query may not write (`SELECT ... INTO`, a data-modifying WITH).
fn query_verdict(query: &Query) -> Verdict {
    let ctes = query.with.iter().flat_map(|w| &w.cte_tables);
    for cte in ctes {
        let v = query_verdict(&cte.query);
        if v != Verdict::Pass {
            return v;
        }
    }
    set_expr_verdict(&query.body)
}

fn set_expr_verdict(body: &SetExpr) -> Verdict {
    match body {
        SetExpr::Select(select) if select.into.is_some() => {
            Verdict::Refuse("SELECT INTO is refused: vitals serve is read-only".to_string())
        }
        SetExpr::Query(query) => query_verdict(query),
        SetExpr::SetOperation { left, right, .. } => match set_expr_verdict(left) {
            Verdict::Pass => set_expr_verdict(right),
            v => v,
        },
        SetExpr::Insert(s) | SetExpr::Update(s) | SetExpr::Delete(s) | SetExpr::Merge(s) => {
            verdict(s)
        }
        _ => Verdict::Pass,
    }
}

fn set_verdict(set: &Set) -> Verdict {
    match set {
        Set::SingleAssignment {
            variable, values, ..
        } => {
            let name = variable.to_string().to_lowercase();
            if CLIENT_VARIABLES.contains(&name.as_str()) && !values.is_empty() {
                Verdict::Pass
            } else if name == "timezone" || name == "time zone" {
                Verdict::Acknowledge("SET")
            } else {
                Verdict::Refuse(format!(
                    "SET {name} is refused: vitals serve is read-only and its settings are the \
                     operator's; a client may set {}",
                    CLIENT_VARIABLES.join(", ")
                ))
            }
        }
        // Read-only and serializable are what every query here is anyway.
        Set::SetTimeZone { .. } | Set::SetTransaction { .. } | Set::SetNames { .. } => {
            Verdict::Acknowledge("SET")
        }
        other => Verdict::Refuse(format!(
            "{} is refused: vitals serve is read-only",
            command(&Statement::Set(other.clone()))
        )),
    }
}

/// The statement's leading keywords, as PostgreSQL names a command.
fn command(statement: &Statement) -> String {
    let text = statement.to_string();
    let words: Vec<&str> = text.split_whitespace().take(2).collect();
    let two = words.join(" ").to_uppercase();
    match words.first().map(|w| w.to_uppercase()) {
        Some(first) if ["CREATE", "DROP", "ALTER"].contains(&first.as_str()) => two,
        Some(first) => first,
        None => "the statement".to_string(),
    }
}

fn refusal(reason: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_string(),
        "25006".to_string(), // read_only_sql_transaction
        reason,
    )))
}

/// The first of the server's query hooks.
#[derive(Debug)]
pub struct ReadOnly;

impl ReadOnly {
    fn respond(statement: &Statement) -> Option<PgWireResult<Response>> {
        match verdict(statement) {
            Verdict::Pass => None,
            Verdict::Acknowledge(tag) => Some(Ok(Response::Execution(Tag::new(tag)))),
            Verdict::Refuse(reason) => Some(Err(refusal(reason))),
        }
    }
}

#[async_trait]
impl QueryHook for ReadOnly {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        ReadOnly::respond(statement)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _ctx: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        match verdict(statement) {
            Verdict::Pass => None,
            // Answered at execution; nothing to plan.
            Verdict::Acknowledge(_) => Some(Ok(LogicalPlan::EmptyRelation(EmptyRelation {
                produce_one_row: false,
                schema: Arc::new(DFSchema::try_from(Schema::empty()).expect("empty schema")),
            }))),
            Verdict::Refuse(reason) => Some(Err(refusal(reason))),
        }
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _plan: &LogicalPlan,
        _params: &ParamValues,
        _ctx: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        ReadOnly::respond(statement)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;

    fn judge(sql: &str) -> Verdict {
        let statements = PostgresCompatibilityParser::new()
            .parse(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        verdict(&statements[0])
    }

    #[test]
    fn reads_pass() {
        for sql in [
            "SELECT 1",
            "WITH t AS (SELECT 1 AS x) SELECT x FROM t UNION ALL SELECT 2",
            "EXPLAIN SELECT 1",
            "SHOW search_path",
            "BEGIN",
            "COMMIT",
            "SET application_name = 'metabase'",
            "SET statement_timeout = 1000",
            "DECLARE c CURSOR FOR SELECT 1",
            "FETCH 10 FROM c",
        ] {
            assert_eq!(judge(sql), Verdict::Pass, "{sql}");
        }
    }

    #[test]
    fn harmless_session_statements_are_acknowledged() {
        assert_eq!(
            judge("SET TIME ZONE 'Europe/Paris'"),
            Verdict::Acknowledge("SET")
        );
        assert_eq!(judge("SET timezone = 'UTC'"), Verdict::Acknowledge("SET"));
        assert_eq!(judge("DISCARD ALL"), Verdict::Acknowledge("DISCARD ALL"));
        assert_eq!(judge("DEALLOCATE ALL"), Verdict::Acknowledge("DEALLOCATE"));
        assert_eq!(judge("RESET ALL"), Verdict::Acknowledge("RESET"));
    }

    #[test]
    fn writes_and_settings_are_refused() {
        for (sql, said) in [
            (
                "INSERT INTO saas_kpis_monthly VALUES (1)",
                "INSERT is refused",
            ),
            ("UPDATE t SET a = 1", "UPDATE is refused"),
            ("DELETE FROM t", "DELETE is refused"),
            ("CREATE TABLE t (a INT)", "CREATE TABLE is refused"),
            ("CREATE VIEW v AS SELECT 1", "CREATE VIEW is refused"),
            ("DROP TABLE saas_kpis_monthly", "DROP TABLE is refused"),
            ("COPY t FROM '/etc/passwd'", "COPY is refused"),
            ("COPY (SELECT 1) TO '/tmp/x.csv'", "COPY is refused"),
            ("TRUNCATE t", "TRUNCATE is refused"),
            ("SELECT 1 INTO t2", "SELECT INTO is refused"),
            (
                "SET datafusion.execution.batch_size = 1",
                "SET datafusion.execution.batch_size is refused",
            ),
            ("SET work_mem = '1GB'", "SET work_mem is refused"),
            ("PREPARE p AS SELECT 1", "PREPARE is refused"),
        ] {
            match judge(sql) {
                Verdict::Refuse(reason) => assert!(reason.contains(said), "{sql}: {reason}"),
                v => panic!("{sql} was not refused: {v:?}"),
            }
        }
    }
}
