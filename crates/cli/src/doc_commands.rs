//! Every `tolem …` and `cargo run --release -- …` command written in the README and in `docs/`
//! parses as written: a flag the docs give that the command does not take (say `--db` after a
//! subcommand that reads it before) fails here, not in a reader's terminal.

use clap::Parser;

use crate::Cli;

/// The commands in `text`: code spans and code-block lines that start with `tolem ` or
/// `cargo run --release -- `, with comments, pipes and optional `[…]` brackets taken off.
fn commands(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut in_block = false;
    let mut prose = String::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            found.extend(command(line));
        } else {
            // Code spans may run over a line break.
            prose.push_str(line);
            prose.push(' ');
        }
    }
    let joined = prose;
    for (index, span) in joined.split('`').enumerate() {
        if index % 2 == 1 {
            found.extend(command(span));
        }
    }
    found
}

fn command(text: &str) -> Option<String> {
    let text = text.trim();
    let rest = text
        .strip_prefix("cargo run --release -- ")
        .or_else(|| text.strip_prefix("tolem "))?;
    let first = rest.split_whitespace().next()?;
    if ![
        "serve",
        "sandbox",
        "registers",
        "mpp",
        "wallet",
        "ipsec",
        "restored",
    ]
    .contains(&first)
    {
        return None;
    }
    // `tolem serve | sandbox | …` lists the commands; `…` stands for what the reader fills in.
    if rest.contains('…') || rest.starts_with("serve | ") {
        return None;
    }
    let rest = rest.split(" #").next().unwrap_or(rest);
    let rest = rest.split(" | ").next().unwrap_or(rest);
    Some(rest.replace(['[', ']'], " ").trim().to_owned())
}

/// Splits like a shell would for these commands: `<that day>` is one word, `a|b` is `a`.
fn words(command: &str) -> Vec<String> {
    let mut words = vec!["tolem".to_owned()];
    let mut current = String::new();
    let mut in_angle = false;
    for c in command.chars() {
        match c {
            '<' => in_angle = true,
            '>' => in_angle = false,
            ' ' if !in_angle => {
                if !current.is_empty() {
                    words.push(std::mem::take(&mut current));
                }
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
        .into_iter()
        .map(|w| w.split('|').next().unwrap_or_default().to_owned())
        .filter(|w| !w.is_empty())
        .map(|w| sample(&w).map_or(w, str::to_owned))
        .collect()
}

/// A value for a placeholder that clap checks the form of.
fn sample(word: &str) -> Option<&'static str> {
    Some(match word {
        "ADDR" => "127.0.0.1:0",
        "PORT" => "0",
        "URL" => "http://127.0.0.1:8091",
        "COMMAND" => "balance",
        "ZONE" => "Asia/Almaty",
        _ => return None,
    })
}

#[test]
fn every_command_in_the_docs_parses() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let mut files = vec![std::path::PathBuf::from(format!("{root}/README.md"))];
    let docs = std::fs::read_dir(format!("{root}/docs")).expect("docs/");
    files.extend(
        docs.map(|e| e.expect("an entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "md")),
    );
    let mut checked = 0;
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable");
        for command in commands(&text) {
            let words = words(&command);
            if let Err(err) = Cli::try_parse_from(&words) {
                use clap::error::ErrorKind;
                let help = matches!(
                    err.kind(),
                    ErrorKind::DisplayHelp
                        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                        | ErrorKind::MissingSubcommand
                );
                assert!(
                    help,
                    "{}: `{command}` does not parse:\n{err}",
                    file.display()
                );
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 20,
        "only {checked} commands found: is the scan broken?"
    );
}

#[test]
fn the_scan_reads_spans_blocks_and_placeholders() {
    let text = "Run `tolem mpp reconcile --register r.csv --date 2026-11-26\n[--db PATH]` now.\n\
                ```sh\ncargo run --release -- wallet balance   # money\n```\n\
                `tolem serve | sandbox | registers` and `tolem registers …`";
    let found = commands(text);
    assert_eq!(
        found,
        vec![
            "wallet balance",
            "mpp reconcile --register r.csv --date 2026-11-26  --db PATH",
        ]
    );
    assert_eq!(
        words("registers daily --date <that day> --format xlsx|csv"),
        vec![
            "tolem",
            "registers",
            "daily",
            "--date",
            "<that day>",
            "--format",
            "xlsx"
        ]
    );
}
