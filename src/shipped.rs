//! The built-in catalog, compiled into the binary so that `vitals demo`
//! works from any folder. The files themselves are the repository's
//! `metrics.toml` and `sql/`.

use std::path::{Path, PathBuf};

pub const CATALOG: &str = include_str!("../metrics.toml");

pub const MODELS: &[(&str, &str)] = &[
    (
        "sql/customer_segments.sql",
        include_str!("../sql/customer_segments.sql"),
    ),
    ("sql/segments.sql", include_str!("../sql/segments.sql")),
    (
        "sql/customer_mrr_snapshot.sql",
        include_str!("../sql/customer_mrr_snapshot.sql"),
    ),
    (
        "sql/customer_mrr_monthly.sql",
        include_str!("../sql/customer_mrr_monthly.sql"),
    ),
    (
        "sql/customer_mrr_12m.sql",
        include_str!("../sql/customer_mrr_12m.sql"),
    ),
    (
        "sql/customer_mrr_paying.sql",
        include_str!("../sql/customer_mrr_paying.sql"),
    ),
    (
        "sql/customer_mrr_3m.sql",
        include_str!("../sql/customer_mrr_3m.sql"),
    ),
    (
        "sql/survey_responses.sql",
        include_str!("../sql/survey_responses.sql"),
    ),
    (
        "sql/support_tickets.sql",
        include_str!("../sql/support_tickets.sql"),
    ),
    (
        "sql/acquisition_spend_allocated.sql",
        include_str!("../sql/acquisition_spend_allocated.sql"),
    ),
    (
        "sql/at_risk_customers.sql",
        include_str!("../sql/at_risk_customers.sql"),
    ),
];

/// Writes the built-in catalog into `dir`; returns the path of its TOML.
pub fn write_to(dir: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir.join("sql"))?;
    for (path, text) in MODELS {
        std::fs::write(dir.join(path), text)?;
    }
    let toml = dir.join("metrics.toml");
    std::fs::write(&toml, CATALOG)?;
    Ok(toml)
}

/// A folder holding the built-in catalog, written once per content: under
/// the system's temp folder, named by a hash of the files.
pub fn materialize() -> std::io::Result<PathBuf> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for text in std::iter::once(CATALOG).chain(MODELS.iter().map(|(_, t)| *t)) {
        for b in text.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    let dir = std::env::temp_dir().join(format!("vitals-builtin-catalog-{h:016x}"));
    write_to(&dir)
}
