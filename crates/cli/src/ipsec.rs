//! `tolem ipsec`: writes the strongSwan configuration of the IPSec link to each MPP (DECISIONS
//! 42), both sides, from the configuration file and, once the PS has run, the MPPs of its
//! database; the text comes from `tolem_ps::ipsec`.
//!
//! Layout under `--out DIR`, per MPP (its caller name escaped as `tolem_ps::ipsec::section_name`):
//! `psk` (the pre-shared key, 0600: made once, then reused, so that a rerun changes nothing),
//! `ps/swanctl.conf` and `ps/secrets.conf` (the PS's side), `mpp/swanctl.conf` and
//! `mpp/secrets.conf` (the MPP's side). The key is never printed.

use std::fs::{DirBuilder, OpenOptions, Permissions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use tolem_ps::Config;
use tolem_ps::catalog::Mpp;
use tolem_ps::ipsec::{self, IpsecAuth, Link, Psk};
use tolem_ps::store::read_catalog_file;

#[derive(Args)]
pub struct IpsecArgs {
    /// The PS's TOML configuration file, as `tolem serve` reads it: `[ipsec]` and the MPPs'
    /// `[mpps.ipsec]`.
    #[arg(long, env = "TOLEM_CONFIG")]
    config: Option<PathBuf>,
    /// The folder the files are written to (one folder per MPP); it holds the keys.
    #[arg(long, default_value = "ipsec")]
    out: PathBuf,
    /// Only the MPP with this caller name (default: every MPP with an `ipsec` table).
    #[arg(long)]
    mpp: Option<String>,
}

/// Secrets are readable by their owner alone.
const SECRET_MODE: u32 = 0o600;
const PUBLIC_MODE: u32 = 0o644;
/// A folder that holds secrets is its owner's alone.
const SECRET_DIR_MODE: u32 = 0o700;

pub fn run(args: IpsecArgs) -> anyhow::Result<()> {
    let mut config = Config::load(args.config.as_deref(), std::env::vars())?;
    stored_mpps(&mut config)?;
    let source = match &args.config {
        Some(path) => path.display().to_string(),
        None => "the configuration (no --config given)".to_owned(),
    };
    if config.ipsec.gateway.is_none() {
        return Err(ipsec::IpsecError::NoGateway.into());
    }
    anyhow::ensure!(
        !config.catalog.mpps.is_empty(),
        "{source} lists no MPP ([[mpps]]): there is no link to make"
    );
    let mpps: Vec<&Mpp> = match &args.mpp {
        Some(name) => {
            let mpp = config
                .catalog
                .mpps
                .iter()
                .find(|m| m.caller_name == name.as_str())
                .ok_or_else(|| ipsec::IpsecError::UnknownMpp(name.clone()))?;
            vec![mpp]
        }
        None => {
            let (with, without): (Vec<&Mpp>, Vec<&Mpp>) =
                config.catalog.mpps.iter().partition(|m| m.ipsec.is_some());
            for mpp in without {
                say!(
                    "{}: skipped, it has no [mpps.ipsec] table",
                    ipsec::section_name(mpp.caller_name.as_str())
                );
            }
            anyhow::ensure!(
                !with.is_empty(),
                "no MPP has an [mpps.ipsec] table in {source}: give each its gateway (docs/ipsec.md)"
            );
            with
        }
    };
    // Every link is checked before anything is written: a mistake in the third MPP leaves no
    // half-written output behind, and no key made for nothing. A throwaway key stands in for
    // the real one, which is only read or made once the rest is known to be right.
    let probe = Psk::generate();
    for mpp in &mpps {
        ipsec::link(&config, mpp, Some(&probe))?;
    }
    make_dir(&args.out, SECRET_DIR_MODE)?;
    for mpp in mpps {
        write_link(&config, mpp, &args.out)?;
    }
    Ok(())
}

/// Once the PS has run, its database holds the operator data (the file only seeds what is not
/// there yet): the MPPs as the admin API left them replace the file's, and MPPs added through it
/// are there too. A PS may be running: the database is only read (no migration, no writer).
fn stored_mpps(config: &mut Config) -> anyhow::Result<()> {
    let path = config.database.clone();
    if !tolem_ps::is_postgres_url(&path) && !path.exists() {
        return Ok(());
    }
    let stored = read_catalog_file(&path).with_context(|| {
        format!(
            "cannot read the MPPs of the database {}",
            tolem_ps::database_for_display(&path)
        )
    })?;
    let mut count = 0;
    for mpp in stored.mpps {
        count += 1;
        match config
            .catalog
            .mpps
            .iter_mut()
            .find(|m| m.caller_name == mpp.caller_name)
        {
            Some(known) => *known = mpp,
            None => config.catalog.mpps.push(mpp),
        }
    }
    say!(
        "read {count} MPPs of the database {}",
        tolem_ps::database_for_display(&path)
    );
    Ok(())
}

fn write_link(config: &Config, mpp: &Mpp, out: &Path) -> anyhow::Result<()> {
    let dir = out.join(ipsec::section_name(mpp.caller_name.as_str()));
    make_dir(&dir, SECRET_DIR_MODE)?;
    let psk = match config.ipsec.auth {
        IpsecAuth::Psk => Some(key(&dir.join("psk"))?),
        IpsecAuth::Pubkey => None,
    };
    let Link { name, ps, mpp, .. } = ipsec::link(config, mpp, psk.as_ref())?;
    for (side, files, whose) in [
        ("ps", ps, "the PS's side"),
        (
            "mpp",
            mpp,
            "the MPP's side: send secrets.conf by a separate channel",
        ),
    ] {
        let side_dir = dir.join(side);
        make_dir(&side_dir, SECRET_DIR_MODE)?;
        let conf = side_dir.join("swanctl.conf");
        write(&conf, &files.swanctl, PUBLIC_MODE)?;
        let mut wrote = conf.display().to_string();
        if let Some(secrets) = &files.secrets {
            let path = side_dir.join("secrets.conf");
            write(&path, secrets, SECRET_MODE)?;
            wrote.push_str(&format!(", {}", path.display()));
        }
        say!("{name}: wrote {wrote} ({whose})");
    }
    Ok(())
}

/// The link's key: the one in `path`, else a new one written there first.
fn key(path: &Path) -> anyhow::Result<Psk> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let mode = std::fs::metadata(path)
                .with_context(|| format!("cannot read {}", path.display()))?
                .permissions()
                .mode();
            anyhow::ensure!(
                mode & 0o077 == 0,
                "{} is readable by others (mode {:o}): `chmod 600` it, and if others may have read it, delete it so that a new key is made",
                path.display(),
                mode & 0o777
            );
            let psk = Psk::parse(&text).with_context(|| format!("{}", path.display()))?;
            say!("kept the pre-shared key in {}", path.display());
            Ok(psk)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let psk = Psk::generate();
            // create_new: two runs at once cannot both write a key and each use its own.
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(SECRET_MODE)
                .open(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            writeln!(file, "{}", psk.to_text())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("cannot write {}", path.display()))?;
            say!("made a new pre-shared key in {}", path.display());
            Ok(psk)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

fn make_dir(path: &Path, mode: u32) -> anyhow::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .with_context(|| format!("cannot create {}", path.display()))
}

/// Writes `text` whole or not at all (a temporary file renamed over the old one), with `mode`
/// from the first byte on, so that a secret is never readable by others, not even for a moment.
fn write(path: &Path, text: &str, mode: u32) -> anyhow::Result<()> {
    let temp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&temp);
    let result = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temp)
        .and_then(|mut file| {
            // The umask may have taken bits off the mode; the mode is what we say it is.
            file.set_permissions(Permissions::from_mode(mode))?;
            file.write_all(text.as_bytes())?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&temp, path));
    result.with_context(|| format!("cannot write {}", path.display()))
}
