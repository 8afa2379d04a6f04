//! DataFusion's errors as PostgreSQL error responses with the SQLSTATE a
//! client can act on. datafusion-postgres sends every DataFusion error as
//! XX000 (internal error); drivers map SQLSTATEs to exception classes
//! (psycopg's UndefinedTable, JDBC's SQLState), and pools treat an
//! internal error as a broken server.

use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError};

/// The SQLSTATE for a DataFusion error's message, if we know one.
fn sqlstate(message: &str) -> Option<&'static str> {
    let m = message.to_lowercase();
    // The first rule whose words are all in the message; the general
    // planning error comes last.
    let rules: &[(&[&str], &'static str)] = &[
        (&["resources exhausted"], "53200"),    // out_of_memory
        (&["sql error: parsererror"], "42601"), // syntax_error
        (&["sql parser error"], "42601"),
        (&["table '", "not found"], "42P01"), // undefined_table
        (&["no field named"], "42703"),       // undefined_column
        (&["invalid function"], "42883"),     // undefined_function
        (&["ambiguous reference"], "42702"),  // ambiguous_column
        (&["divide by zero"], "22012"),       // division_by_zero
        (&["cannot be cast"], "22P02"),       // invalid_text_representation
        (&["cast error"], "22P02"),
        (&["error during planning"], "42000"), // syntax_error_or_access_rule_violation
        (&["this feature is not implemented"], "0A000"), // feature_not_supported
    ];
    rules
        .iter()
        .find(|(needles, _)| needles.iter().all(|n| m.contains(n)))
        .map(|(_, code)| *code)
}

/// An internal error made specific when its message says what it is.
pub fn classify(error: PgWireError) -> PgWireError {
    match error {
        PgWireError::ApiError(e) => {
            let message = e.to_string();
            match sqlstate(&message) {
                Some(code) => PgWireError::UserError(Box::new(ErrorInfo::new(
                    "ERROR".to_string(),
                    code.to_string(),
                    message,
                ))),
                None => PgWireError::ApiError(e),
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::sqlstate;

    #[test]
    fn datafusion_messages_get_their_sqlstate() {
        let cases = [
            (
                "Error during planning: table 'datafusion.public.nope' not found",
                "42P01",
            ),
            (
                "Schema error: No field named nope. Valid fields are t.a.",
                "42703",
            ),
            (
                "SQL error: ParserError(\"Expected: an expression, found: EOF\")",
                "42601",
            ),
            (
                "sql parser error: Expected: an SQL statement, found: selec",
                "42601",
            ),
            (
                "Resources exhausted: Failed to allocate additional 1.0 MB",
                "53200",
            ),
            ("Arrow error: Divide by zero error", "22012"),
            ("Error during planning: Invalid function 'nope'", "42883"),
        ];
        for (message, code) in cases {
            assert_eq!(sqlstate(message), Some(code), "{message}");
        }
        assert_eq!(sqlstate("Internal error: something else"), None);
    }
}
