//! The catalog's `[storage]`: how to reach an object store beyond what the
//! environment says (an S3-compatible endpoint), and how hard to try.

use std::time::Duration;

use object_store::ClientConfigKey;
use object_store::RetryConfig;

/// Settings for every object store a build uses. Unset values keep the
/// store's environment variables or object_store's defaults (10 retries
/// within 3 minutes, 5 s to connect, 30 s per request).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StorageOptions {
    /// An S3-compatible (or Azure) endpoint, e.g. `http://127.0.0.1:8333`;
    /// an `http://` endpoint allows plain HTTP.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub allow_http: Option<bool>,
    /// Retries of a failed request, with exponential backoff.
    pub retries: Option<usize>,
    /// Time after which a request is no longer retried.
    pub retry_timeout: Option<Duration>,
    pub connect_timeout: Option<Duration>,
    pub request_timeout: Option<Duration>,
}

impl StorageOptions {
    /// The HTTP client settings that were set.
    pub fn client_settings(&self) -> Vec<(ClientConfigKey, String)> {
        let seconds = |d: &Duration| format!("{}ms", d.as_millis());
        let mut out = Vec::new();
        if let Some(allow) = self.allow_http {
            out.push((ClientConfigKey::AllowHttp, allow.to_string()));
        }
        if let Some(t) = &self.connect_timeout {
            out.push((ClientConfigKey::ConnectTimeout, seconds(t)));
        }
        if let Some(t) = &self.request_timeout {
            out.push((ClientConfigKey::Timeout, seconds(t)));
        }
        out
    }

    /// The retry policy, if the catalog changed it.
    pub fn retry(&self) -> Option<RetryConfig> {
        if self.retries.is_none() && self.retry_timeout.is_none() {
            return None;
        }
        let default = RetryConfig::default();
        Some(RetryConfig {
            backoff: default.backoff,
            max_retries: self.retries.unwrap_or(default.max_retries),
            retry_timeout: self.retry_timeout.unwrap_or(default.retry_timeout),
        })
    }
}
