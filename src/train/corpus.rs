//! Scanning a corpus folder: `<root>/<style>/**/*.mid`, the style taken from the folder name.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::midi::{self, Song};
use crate::roll::{STEPS_PER_BAR, Style, WINDOW_STEPS};

/// A file that was read and has something to learn from.
#[derive(Debug, Clone)]
pub struct Piece {
    pub path: PathBuf,
    /// From the nearest enclosing folder named like a style; `None` outside such folders.
    pub style: Option<Style>,
    pub song: Song,
    /// Start steps of its 8-bar windows that hold notes.
    pub windows: Vec<usize>,
}

/// A file that was left out, with the reason a user can act on.
#[derive(Debug, Clone)]
pub struct Rejection {
    pub path: PathBuf,
    pub reason: String,
}

/// Everything found under a corpus root.
#[derive(Debug, Default)]
pub struct Corpus {
    pub pieces: Vec<Piece>,
    pub rejected: Vec<Rejection>,
    /// Files without a MIDI extension, not looked at.
    pub skipped: usize,
}

/// Per-style totals of a [`Corpus`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StyleSummary {
    pub files: usize,
    pub windows: usize,
    pub notes: usize,
    pub bars: usize,
}

fn is_midi_path(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        ["mid", "midi", "smf", "kar"]
            .iter()
            .any(|m| e.eq_ignore_ascii_case(m))
    })
}

/// The style of the nearest folder between `root` and `path` that is named like one.
fn style_of(root: &Path, path: &Path) -> Option<Style> {
    let rel = path.strip_prefix(root).ok()?;
    rel.parent()?
        .components()
        .rev()
        .find_map(|c| c.as_os_str().to_str()?.parse().ok())
        .or_else(|| root.file_name()?.to_str()?.parse().ok())
}

/// Reads one file into a piece, or says why it cannot be used: unreadable, no pitched notes,
/// or shorter than one 8-bar window.
pub fn read_piece(path: &Path, style: Option<Style>, hop: usize) -> Result<Piece, Rejection> {
    let reject = |reason: String| Rejection {
        path: path.to_path_buf(),
        reason,
    };
    let song = midi::read_file(path).map_err(|e| reject(e.to_string()))?;
    if song.notes.is_empty() {
        let why = if song.dropped_drum_notes > 0 {
            "only drums (channel 10), no pitched notes"
        } else {
            "no notes"
        };
        return Err(reject(why.to_string()));
    }
    let windows = song.to_roll().window_starts(WINDOW_STEPS, hop);
    if windows.is_empty() {
        return Err(reject(format!(
            "{} bars long; at least 8 are needed for one window",
            song.steps.div_ceil(STEPS_PER_BAR as u32)
        )));
    }
    Ok(Piece {
        path: path.to_path_buf(),
        style,
        song,
        windows,
    })
}

/// Reads every MIDI file under `root` (or `root` itself if it is a file) in parallel, windows
/// `hop` steps apart. Results are sorted by path so runs are reproducible.
pub fn scan(root: &Path, hop: usize) -> std::io::Result<Corpus> {
    let mut files = Vec::new();
    let mut skipped = 0;
    for entry in walkdir::WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
    {
        let entry = entry.map_err(|e| {
            let text = e.to_string();
            e.into_io_error()
                .unwrap_or_else(|| std::io::Error::other(text))
        })?;
        if !entry.file_type().is_file() {
            continue;
        }
        if is_midi_path(entry.path()) {
            files.push(entry.into_path());
        } else {
            skipped += 1;
        }
    }
    let results: Vec<Result<Piece, Rejection>> = files
        .par_iter()
        .map(|path| read_piece(path, style_of(root, path), hop))
        .collect();
    let mut corpus = Corpus {
        skipped,
        ..Corpus::default()
    };
    for result in results {
        match result {
            Ok(piece) => corpus.pieces.push(piece),
            Err(rejection) => corpus.rejected.push(rejection),
        }
    }
    Ok(corpus)
}

impl Corpus {
    /// Totals per style (`None` for unlabelled files), in [`Style::ALL`] order.
    pub fn summary(&self) -> Vec<(Option<Style>, StyleSummary)> {
        let mut rows: Vec<(Option<Style>, StyleSummary)> = Style::ALL
            .iter()
            .map(|&s| (Some(s), StyleSummary::default()))
            .chain(std::iter::once((None, StyleSummary::default())))
            .collect();
        for piece in &self.pieces {
            let row = &mut rows[piece.style.map_or(Style::ALL.len(), Style::index)].1;
            row.files += 1;
            row.windows += piece.windows.len();
            row.notes += piece.song.notes.len();
            row.bars += piece.song.steps as usize / STEPS_PER_BAR;
        }
        rows.retain(|(_, s)| s.files > 0);
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn style_comes_from_the_nearest_style_folder() {
        let root = Path::new("/data/train");
        assert_eq!(
            style_of(root, Path::new("/data/train/folk/a.mid")),
            Some(Style::Folk)
        );
        assert_eq!(
            style_of(root, Path::new("/data/train/chorale/bwv/a.mid")),
            Some(Style::Chorale)
        );
        assert_eq!(style_of(root, Path::new("/data/train/a.mid")), None);
        assert_eq!(
            style_of(Path::new("/x/folk"), Path::new("/x/folk/a.mid")),
            Some(Style::Folk)
        );
        assert!(is_midi_path(Path::new("a.MID")) && !is_midi_path(Path::new("a.pdf")));
    }
}
