//! Secrets never leave the process in a message: every error text that may
//! carry a store's answer passes through `redact`, which blanks the values
//! of the credential variables of the environment.

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

/// `text` with every credential of the environment replaced by `***`.
pub fn redact(text: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn blanks_credentials_of_the_environment() {
        // SAFETY: tests of this module are the only readers of this
        // variable, which no other test sets.
        unsafe { std::env::set_var("AZURE_STORAGE_SAS_KEY", "sv=2024-secret-token") };
        assert_eq!(
            redact("denied for sv=2024-secret-token at x"),
            "denied for *** at x"
        );
    }
}
