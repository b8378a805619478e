//! The `diffroll` binary: parses the command line ([`diffroll::cli`]), runs the command, and
//! prints an error as one line naming its causes, with exit status 1.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = diffroll::cli::Cli::parse();
    match diffroll::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("diffroll: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line ("diffroll: IN.mid: reason"), each cause once: many
/// library errors already print their source in their own message.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}
