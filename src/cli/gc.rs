use clap::Args;

use crate::error::{Result, VitalsError};
use crate::publish::{Lock, Target};
use crate::storage::{Location, StorageOptions};

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Where the builds were published: a path or a URL (s3://...).
    #[arg(long, default_value = "target/vitals")]
    pub target: String,
    /// Builds to keep: the published one and those before it.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: u32,
    /// If a build is writing the target, wait for it instead of failing.
    #[arg(long)]
    pub wait: bool,
}

/// Removes the builds no kept manifest lists, under the target's lock.
pub async fn run(args: GcArgs) -> Result<()> {
    let location = Location::parse(
        &args.target,
        std::path::Path::new("."),
        &StorageOptions::default(),
    )?;
    if Target::read_manifest(&location).await?.is_none() {
        return Err(VitalsError::Usage(format!(
            "{} is not a build target (no _manifest.json)",
            args.target
        )));
    }
    let target = Target::new(location)?;
    let lock = Lock::acquire(&target.location, &target.build_id, args.wait).await?;
    let report = Target::gc(&target.location, args.keep as usize, None).await;
    lock.release().await;
    eprintln!(
        "kept {}, removed {} build folder{} and {} old manifest{}",
        super::validate::count(report.builds_kept, "build"),
        report.folders_removed,
        if report.folders_removed == 1 { "" } else { "s" },
        report.history_removed,
        if report.history_removed == 1 { "" } else { "s" },
    );
    Ok(())
}
