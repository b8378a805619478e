//! Opening a MIDI file as a take: Open MIDI… and Ctrl+O ask for a file in a dialog, a single
//! MIDI file dropped on the window asks whether to open it or fine-tune on it. The dialog and
//! the file read run on a short thread; the take is made on the UI thread when the song
//! arrives over the background channel.

use std::path::{Path, PathBuf};

use super::{Background, DiffrollApp, Message, Origin, Take, Variation};
use crate::midi::Song;

/// Extensions a MIDI file goes by.
const EXTENSIONS: [&str; 2] = ["mid", "midi"];

pub fn is_midi_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|m| e.eq_ignore_ascii_case(m)))
        && !path.is_dir()
}

/// Asks for a file, then reads it, on a short thread.
pub fn ask(app: &mut DiffrollApp) {
    let dialogs = app.dialogs.clone();
    spawn_read(app, move || dialogs.open_file("Open MIDI", &EXTENSIONS));
}

/// Reads `path` on a short thread and opens it when it arrives.
pub fn read(app: &mut DiffrollApp, path: PathBuf) {
    spawn_read(app, move || Some(path));
}

fn spawn_read(app: &mut DiffrollApp, path: impl FnOnce() -> Option<PathBuf> + Send + 'static) {
    let tx = app.background.0.clone();
    let ctx = app.ctx.clone();
    let spawned = std::thread::Builder::new()
        .name("diffroll-open".into())
        .spawn(move || {
            let Some(path) = path() else {
                return;
            };
            let song = crate::midi::read_file(&path).map_err(|e| e.to_string());
            let _ = tx.send(Background::Opened { path, song });
            ctx.request_repaint();
        });
    if let Err(e) = spawned {
        app.say(Message::error(format!("opening a file: {e}")));
    }
}

/// Files dropped on the window: one MIDI file asks what to do with it; anything else (several
/// files, a folder) goes to fine-tuning as before.
pub fn dropped(app: &mut DiffrollApp, paths: Vec<PathBuf>) {
    match paths.as_slice() {
        [one] if is_midi_file(one) => app.drop_choice = Some(one.clone()),
        _ => super::finetune_panel::FinetunePanel::dropped(app, paths),
    }
}

/// The song read from `path` (or why it could not be): a new take, selected, or a message
/// that says why nothing changed.
pub fn arrived(app: &mut DiffrollApp, path: PathBuf, song: Result<Song, String>) {
    let name = file_name(&path);
    let song = match song {
        Ok(song) => song,
        Err(e) => {
            app.say(Message::error(format!("could not open {name}: {e}")));
            return;
        }
    };
    if song.tracks == 0 {
        app.say(Message::error(format!(
            "{name} has no tracks: there is nothing in it to open; choose another MIDI file"
        )));
        return;
    }
    if song.notes.is_empty() {
        let drums = if song.dropped_drum_notes > 0 {
            format!(" (its {} drum notes are left out)", song.dropped_drum_notes)
        } else {
            String::new()
        };
        app.say(Message::error(format!(
            "{name} has no pitched notes{drums}: nothing to open; choose a file with a melody \
             or chords"
        )));
        return;
    }
    let bar_starts = song.bar_starts();
    let bars = bar_starts.len();
    let notes = song.notes.len();
    let roll = song.to_roll();
    let take = Take {
        number: 0,
        origin: Origin::Opened { path },
        variations: vec![Variation {
            roll,
            notes: Some(song.notes),
        }],
        bar_starts,
        tempo_bpm: Some(song.tempo_bpm),
        seconds: 0.0,
        thumbs: Vec::new(),
    };
    let number = app.file_take(take);
    app.say(Message::info(format!(
        "take {number}: opened {name}, {bars} bars, {notes} notes"
    )));
}

/// What to do with a dropped MIDI file.
enum Choice {
    Open,
    Finetune,
    Cancel,
}

/// The small window that asks what a dropped MIDI file is for.
pub fn show_choice(app: &mut DiffrollApp, ctx: &egui::Context) {
    let Some(path) = app.drop_choice.clone() else {
        return;
    };
    let mut choice = None;
    let modal = egui::Modal::new(egui::Id::unique("diffroll.drop_choice")).show(ctx, |ui| {
        ui.set_max_width(380.0);
        ui.heading(file_name(&path));
        ui.label(
            "Open it as a take (play it, export it, regenerate some of its bars), or fine-tune \
             a model on it?",
        );
        ui.add_space(6.0);
        ui.horizontal(|ui| {
            if ui.button("Open").clicked() {
                choice = Some(Choice::Open);
            }
            if ui.button("Fine-tune on it").clicked() {
                choice = Some(Choice::Finetune);
            }
            if ui.button("Cancel").clicked() {
                choice = Some(Choice::Cancel);
            }
        });
    });
    if choice.is_none() && modal.should_close() {
        choice = Some(Choice::Cancel);
    }
    let Some(choice) = choice else {
        return;
    };
    app.drop_choice = None;
    match choice {
        Choice::Open => read(app, path),
        Choice::Finetune => super::finetune_panel::FinetunePanel::dropped(app, vec![path]),
        Choice::Cancel => {}
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}
