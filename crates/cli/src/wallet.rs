//! `tolem wallet`: a customer of the reference MPP on the command line (issue 4; being built).

use clap::Args;

#[derive(Args)]
pub struct WalletArgs {}

pub async fn run(args: WalletArgs) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("the wallet is not available yet")
}
