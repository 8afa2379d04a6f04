//! Where tables live: a local folder or a prefix of an object store (S3 and
//! S3-compatible stores, Google Cloud Storage, Azure Blob Storage), all
//! behind one `ObjectStore`, so sources, targets and the publish protocol
//! have one code path. Credentials come from the standard environment
//! variables of each store and never appear in a message (`clean`).

mod clean;
mod options;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::prelude::SessionContext;
use object_store::ObjectStore;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as Key;
use url::Url;

use crate::error::{Result, VitalsError};

pub use clean::clean;
pub use options::StorageOptions;

/// A folder: a local path, or a prefix in a bucket.
#[derive(Debug, Clone)]
pub struct Location {
    store: Arc<dyn ObjectStore>,
    /// `scheme://authority/`: under this URL DataFusion finds the store.
    base: Url,
    prefix: Key,
    /// As written by the user, for messages (a URL never holds secrets
    /// here: credentials come from the environment).
    display: String,
    local: Option<PathBuf>,
}

impl Location {
    /// A URL (`s3://bucket/prefix`, `gs://`, `az://`, `file://`) or a path;
    /// a relative path is taken from `relative_to`.
    pub fn parse(text: &str, relative_to: &Path, options: &StorageOptions) -> Result<Location> {
        let text = text.trim();
        if !text.contains("://") {
            let path = Path::new(text);
            let path = if path.is_absolute() {
                path.to_path_buf()
            } else {
                relative_to.join(path)
            };
            return Self::local(&path);
        }
        let url = Url::parse(text)
            .map_err(|e| VitalsError::Usage(format!("`{text}` is not a valid URL: {e}")))?;
        let store: Arc<dyn ObjectStore> = match url.scheme() {
            "file" => {
                let path = url.to_file_path().map_err(|()| {
                    VitalsError::Usage(format!("`{text}` is not a local file URL"))
                })?;
                return Self::local(&path);
            }
            "s3" | "s3a" => Arc::new(s3(text, options)?),
            "gs" => Arc::new(gcs(text, options)?),
            "az" | "abfs" | "abfss" | "azure" | "adl" => Arc::new(azure(text, options)?),
            other => {
                return Err(VitalsError::Usage(format!(
                    "`{text}`: storage `{other}://` is not supported; use a path, file://, s3://, gs:// or az://"
                )));
            }
        };
        let base = Url::parse(&format!("{}://{}/", url.scheme(), url.authority()))
            .map_err(|e| VitalsError::Usage(format!("`{text}`: {e}")))?;
        let prefix = Key::from_url_path(url.path())
            .map_err(|e| VitalsError::Usage(format!("`{text}`: {e}")))?;
        Ok(Location {
            store,
            base,
            prefix,
            display: text.trim_end_matches('/').to_string(),
            local: None,
        })
    }

    /// A local folder or file.
    pub fn local(path: &Path) -> Result<Location> {
        let absolute = std::path::absolute(path).map_err(|e| {
            VitalsError::Usage(format!("`{}` is not a usable path: {e}", path.display()))
        })?;
        let prefix = Key::from_absolute_path(&absolute).map_err(|e| {
            VitalsError::Usage(format!("`{}` is not a usable path: {e}", path.display()))
        })?;
        Ok(Location {
            // Removing a build's last file removes its emptied folders too.
            store: Arc::new(LocalFileSystem::new().with_automatic_cleanup(true)),
            base: Url::parse("file:///").expect("valid URL"),
            prefix,
            display: path.display().to_string(),
            local: Some(absolute),
        })
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The key of `relative` (a `/`-separated path below this location).
    pub fn key(&self, relative: &str) -> Key {
        relative
            .split('/')
            .filter(|p| !p.is_empty())
            .fold(self.prefix.clone(), |k, part| k.join(part))
    }

    /// `relative` as it is relative to this location, if below it.
    pub fn relative(&self, key: &Key) -> Option<String> {
        key.prefix_match(&self.prefix).map(|parts| {
            parts
                .map(|p| p.as_ref().to_string())
                .collect::<Vec<_>>()
                .join("/")
        })
    }

    /// The URL of `relative` for DataFusion (a local path for local files);
    /// a folder's ends with `/`.
    pub fn url(&self, relative: &str, folder: bool) -> String {
        let key = self.key(relative);
        let mut url = match &self.local {
            Some(_) => format!("/{}", key.as_ref()),
            None => format!("{}{}", self.base, key.as_ref()),
        };
        if folder && !url.ends_with('/') {
            url.push('/');
        }
        url
    }

    /// `relative` for people: the location as written, then the path.
    pub fn describe(&self, relative: &str) -> String {
        if relative.is_empty() {
            self.display.clone()
        } else {
            format!("{}/{}", self.display, relative.trim_start_matches('/'))
        }
    }

    /// The local folder, for a local location.
    pub fn local_path(&self) -> Option<&Path> {
        self.local.as_deref()
    }

    /// A location below this one, on the same store.
    pub fn join(&self, relative: &str) -> Location {
        Location {
            store: Arc::clone(&self.store),
            base: self.base.clone(),
            prefix: self.key(relative),
            display: self.describe(relative),
            local: self.local.as_ref().map(|p| p.join(relative)),
        }
    }

    /// Lets DataFusion read this location's URLs (local files it reads
    /// already).
    pub fn register(&self, ctx: &SessionContext) {
        if self.local.is_none() {
            ctx.register_object_store(&self.base, Arc::clone(&self.store));
        }
    }

    /// A storage error on `relative`, with the location, redacted, and a
    /// hint when the store refused the credentials.
    pub fn error(&self, doing: &str, relative: &str, e: &object_store::Error) -> VitalsError {
        VitalsError::Data(format!(
            "{doing} {}: {}{}",
            self.describe(relative),
            clean(&e.to_string()),
            hint(e, self.credentials())
        ))
    }

    /// The environment variables that hold this store's credentials.
    fn credentials(&self) -> &'static str {
        match self.base.scheme() {
            "s3" | "s3a" => "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            "gs" => "GOOGLE_APPLICATION_CREDENTIALS or GOOGLE_SERVICE_ACCOUNT",
            "file" => "the files' permissions",
            _ => "AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY",
        }
    }
}

/// What to do about an error, when the error alone does not say.
fn hint(e: &object_store::Error, credentials: &str) -> String {
    let denied = || {
        format!(
            "; access denied: check the credentials ({credentials}) and the bucket's permissions"
        )
    };
    match e {
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => denied(),
        object_store::Error::Generic { source, .. } => {
            let text = source.to_string();
            if [
                "SignatureDoesNotMatch",
                "InvalidAccessKeyId",
                "AccessDenied",
            ]
            .iter()
            .any(|code| text.contains(code))
            {
                denied()
            } else if ["error sending request", "Connection refused", "timed out"]
                .iter()
                .any(|sign| text.contains(sign))
            {
                "; the store did not answer: check the endpoint and the network \
                 ([storage] retries and timeouts set how long to try)"
                    .into()
            } else {
                String::new()
            }
        }
        _ => String::new(),
    }
}

fn s3(url: &str, options: &StorageOptions) -> Result<object_store::aws::AmazonS3> {
    let mut b = AmazonS3Builder::from_env().with_url(url);
    if let Some(endpoint) = &options.endpoint {
        b = b.with_endpoint(endpoint);
        if endpoint.starts_with("http://") {
            b = b.with_allow_http(true);
        }
    }
    if let Some(region) = &options.region {
        b = b.with_region(region);
    }
    for (key, value) in options.client_settings() {
        b = b.with_config(AmazonS3ConfigKey::Client(key), value);
    }
    if let Some(retry) = options.retry() {
        b = b.with_retry(retry);
    }
    b.build().map_err(|e| config_error(url, &e))
}

fn gcs(url: &str, options: &StorageOptions) -> Result<object_store::gcp::GoogleCloudStorage> {
    let mut b = GoogleCloudStorageBuilder::from_env().with_url(url);
    for (key, value) in options.client_settings() {
        b = b.with_config(GoogleConfigKey::Client(key), value);
    }
    if let Some(retry) = options.retry() {
        b = b.with_retry(retry);
    }
    b.build().map_err(|e| config_error(url, &e))
}

fn azure(url: &str, options: &StorageOptions) -> Result<object_store::azure::MicrosoftAzure> {
    let mut b = MicrosoftAzureBuilder::from_env().with_url(url);
    if let Some(endpoint) = &options.endpoint {
        b = b.with_endpoint(endpoint.clone());
    }
    for (key, value) in options.client_settings() {
        b = b.with_config(AzureConfigKey::Client(key), value);
    }
    if let Some(retry) = options.retry() {
        b = b.with_retry(retry);
    }
    b.build().map_err(|e| config_error(url, &e))
}

fn config_error(url: &str, e: &object_store::Error) -> VitalsError {
    VitalsError::Usage(format!(
        "cannot use {url}: {}; the store's settings come from its environment variables \
         (e.g. AWS_REGION, AWS_ENDPOINT_URL) and the catalog's [storage]",
        clean(&e.to_string())
    ))
}
