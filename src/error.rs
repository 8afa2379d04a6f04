//! What can go wrong, split by who must act: the person at the command line
//! (usage), the analyst (catalog), or the data engineer (data and storage).
//! Each kind has its exit code.

use crate::catalog::Diagnostics;

#[derive(Debug, thiserror::Error)]
pub enum VitalsError {
    /// Wrong arguments: exit 2.
    #[error("{0}")]
    Usage(String),
    /// The catalog is invalid: exit 2.
    #[error("{0}")]
    Catalog(Diagnostics),
    /// The data or the storage failed the build: exit 1.
    #[error("{0}")]
    Data(String),
    /// Another build holds the target: exit 3, so that a scheduler can
    /// tell "try later" from a failure.
    #[error("{0}")]
    Busy(String),
}

impl VitalsError {
    pub fn exit_code(&self) -> i32 {
        match self {
            VitalsError::Usage(_) | VitalsError::Catalog(_) => 2,
            VitalsError::Data(_) => 1,
            VitalsError::Busy(_) => 3,
        }
    }

    pub fn data(context: impl std::fmt::Display, cause: impl std::fmt::Display) -> Self {
        VitalsError::Data(format!("{context}: {cause}"))
    }
}

impl From<Diagnostics> for VitalsError {
    fn from(d: Diagnostics) -> Self {
        VitalsError::Catalog(d)
    }
}

pub type Result<T, E = VitalsError> = std::result::Result<T, E>;
