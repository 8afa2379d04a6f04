//! Messages that carry a store's answer pass through `clean`: secrets never
//! leave the process (the values of the credential variables of the
//! environment are blanked), and an S3 XML error body is cut to its code
//! and message.

/// Environment variables whose values are secrets.
const SECRETS: &[&str] = &[
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_SAS_KEY",
    "AZURE_STORAGE_TOKEN",
    "AZURE_CLIENT_SECRET",
];

/// `text` without credentials and with short store errors.
pub fn clean(text: &str) -> String {
    shorten_xml_error(&redact(text))
}

/// `text` with every credential of the environment replaced by `***`.
fn redact(text: &str) -> String {
    let mut out = text.to_string();
    for name in SECRETS {
        if let Ok(value) = std::env::var(name) {
            // A very short value would blank innocent words; no real
            // credential is that short.
            if value.len() >= 8 {
                out = out.replace(&value, "***");
            }
        }
    }
    out
}

/// `<?xml ...?><Error><Code>C</Code><Message>M</Message>...</Error>` becomes
/// `C: M`; the rest (request ids, string to sign) helps nobody reading it.
fn shorten_xml_error(text: &str) -> String {
    let Some(start) = text.find("<?xml").or_else(|| text.find("<Error>")) else {
        return text.to_string();
    };
    let Some(end) = text[start..]
        .find("</Error>")
        .map(|e| start + e + "</Error>".len())
    else {
        return text.to_string();
    };
    let body = &text[start..end];
    let tag = |name: &str| {
        let open = format!("<{name}>");
        let from = body.find(&open)? + open.len();
        let to = body[from..].find(&format!("</{name}>"))? + from;
        // Azure appends request id and time lines to its message.
        let value = &body[from..to];
        Some(
            value
                .split("\nRequestId:")
                .next()
                .unwrap_or(value)
                .trim()
                .to_string(),
        )
    };
    match (tag("Code"), tag("Message")) {
        (Some(code), Some(message)) => {
            format!("{}{code}: {message}{}", &text[..start], &text[end..])
        }
        (Some(code), None) => format!("{}{code}{}", &text[..start], &text[end..]),
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn blanks_credentials_of_the_environment() {
        // SAFETY: only this test reads or writes this variable.
        unsafe { std::env::set_var("AZURE_STORAGE_SAS_KEY", "sv=2024-secret-token") };
        assert_eq!(
            clean("denied for sv=2024-secret-token at x"),
            "denied for *** at x"
        );
    }

    #[test]
    fn cuts_an_s3_error_body_to_its_code_and_message() {
        let text = "403 Forbidden: <?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match.</Message><RequestId>18EA</RequestId></Error>; check";
        assert_eq!(
            clean(text),
            "403 Forbidden: SignatureDoesNotMatch: The request signature we calculated does not match.; check"
        );
        assert_eq!(clean("no xml here"), "no xml here");
    }
}
