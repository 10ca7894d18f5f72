//! `tolem registers …`: registers made on demand (issue 5; being built).

use clap::Args;

#[derive(Args)]
pub struct RegistersArgs {}

pub async fn run(args: RegistersArgs) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("registers are not available yet")
}
