//! README.md's command reference is what the binary's `--help` prints. `ROWTRAIL_BLESS=1 cargo test
//! --test readme` rewrites the section after a change to the command line.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on unexpected values.

mod support;

use clap::CommandFactory;
use support::rowtrail_command;

const START: &str = "<!-- cli-reference:start -->\n";
const END: &str = "<!-- cli-reference:end -->";

/// `--help` of the binary at a fixed width, so the text does not depend on the terminal.
fn help(args: &[&str]) -> String {
    let output = rowtrail_command()
        .args(args)
        .arg("--help")
        .env("COLUMNS", "100")
        .output()
        .unwrap();
    assert!(output.status.success(), "{args:?} --help failed");
    String::from_utf8(output.stdout)
        .unwrap()
        .trim_end()
        .to_owned()
}

fn reference() -> String {
    let mut text = format!("### rowtrail\n\n```text\n{}\n```\n", help(&[]));
    for command in rowtrail::cli::Cli::command().get_subcommands() {
        let name = command.get_name();
        if name == "help" {
            continue;
        }
        text.push_str(&format!(
            "\n### rowtrail {name}\n\n```text\n{}\n```\n",
            help(&[name])
        ));
    }
    text
}

#[test]
fn the_readme_command_reference_matches_the_binary() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let start = readme
        .find(START)
        .expect("README.md has the reference start marker")
        + START.len();
    let end = readme
        .find(END)
        .expect("README.md has the reference end marker");
    let expected = reference();
    if std::env::var_os("ROWTRAIL_BLESS").is_some() {
        let updated = format!("{}{expected}{}", &readme[..start], &readme[end..]);
        std::fs::write(&path, updated).unwrap();
        return;
    }
    assert!(
        readme[start..end] == expected,
        "README.md's command reference is out of date: run ROWTRAIL_BLESS=1 cargo test --test readme"
    );
}

#[test]
fn the_readme_names_the_two_commands_of_the_quick_start() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let quick_start = &readme[readme.find("## Quick start").unwrap()..];
    let block = &quick_start[..quick_start.find("```\n\n").unwrap()];
    assert!(block.contains("cargo run --release -- demo"), "{block}");
    assert!(block.contains("cargo test --locked"), "{block}");
}
