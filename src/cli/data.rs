//! `diffroll data DIR`: scans a corpus folder (`DIR/<style>/*.mid`) and reports files read,
//! files rejected with the reason, and eight-bar windows, bars and notes per style. The
//! scanning is [`crate::train::corpus`]'s.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;

use super::shown;
use crate::roll::STEPS_PER_BAR;
use crate::train::corpus;

#[derive(Debug, Args)]
pub struct DataArgs {
    /// Corpus folder, e.g. ../shared/corpus/train (styles are its sub-folders), or one file.
    pub path: PathBuf,
    /// Bars between the starts of consecutive 8-bar windows.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=8))]
    pub hop_bars: u16,
}

pub fn run(args: DataArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let hop = usize::from(args.hop_bars) * STEPS_PER_BAR;
    let corpus = corpus::scan(&args.path, hop).with_context(|| shown(&args.path))?;
    for r in &corpus.rejected {
        println!("rejected  {}: {}", shown(&r.path), r.reason);
    }
    println!();
    println!(
        "{:<10} {:>7} {:>9} {:>8} {:>10}",
        "style", "files", "windows", "bars", "notes"
    );
    for (style, s) in corpus.summary() {
        let name = style.map_or("(none)", |s| s.name());
        println!(
            "{:<10} {:>7} {:>9} {:>8} {:>10}",
            name, s.files, s.windows, s.bars, s.notes
        );
    }
    println!(
        "\n{} files read, {} rejected, {} other files skipped; 8-bar windows every {} bar(s); {:.1} s",
        corpus.pieces.len(),
        corpus.rejected.len(),
        corpus.skipped,
        args.hop_bars,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
