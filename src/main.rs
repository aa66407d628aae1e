//! The `rowtrail` binary: parse arguments, set up logging, run, report.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = rowtrail::cli::Cli::parse();
    rowtrail::cli::init_logging(cli.verbose);
    match rowtrail::cli::run(cli) {
        Ok(code) => code,
        Err(error) if rowtrail::cli::output_closed(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
