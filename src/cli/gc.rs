use std::path::PathBuf;

use clap::Args;

use crate::error::{Result, VitalsError};
use crate::publish::{Lock, Target};

#[derive(Debug, Args)]
pub struct GcArgs {
    /// Output folder of the builds.
    #[arg(long, default_value = "target/vitals")]
    pub target: PathBuf,
    /// Builds to keep: the published one and those before it.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: u32,
    /// If a build is writing the target, wait for it instead of failing.
    #[arg(long)]
    pub wait: bool,
}

/// Removes the builds no kept manifest lists, under the target's lock.
pub async fn run(args: GcArgs) -> Result<()> {
    if !args.target.is_dir() {
        return Err(VitalsError::Usage(format!(
            "{} is not a build target (no such folder)",
            args.target.display()
        )));
    }
    let target = Target::new(&args.target)?;
    let _lock = Lock::acquire(&args.target, &target.build_id, args.wait).await?;
    let report = Target::gc(&args.target, args.keep as usize, None);
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
