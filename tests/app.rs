//! The app through egui_kittest: a tiny model with random weights stands in for the real one
//! (the app must not care). Generate shows every denoising step and then a roll, enables Play
//! and Export; Export writes a MIDI file whose notes read back equal to the roll's, also by
//! an independent parser; Esc cancels within a step.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use diffroll::app::{Dialogs, DiffrollApp, ModelStatus, Settings};
use diffroll::device::DeviceRequest;
use diffroll::model::{KeyChoice, ModelCard};
use diffroll::roll::{KEY_NAMES, Style};
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};

mod tiny;

/// Saved models go to one temporary folder for this whole test binary: the catalog reads
/// `DIFFROLL_DATA_DIR`, and every test sets it to the same value before anything reads it.
fn data_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        // SAFETY: set once, before any thread of this binary reads the environment for it.
        unsafe { std::env::set_var(diffroll::model::catalog::DATA_DIR_ENV, dir.path()) };
        dir
    })
    .path()
}

/// A file dropped on the window, as the windowing system would hand it over.
#[derive(Debug)]
struct Dropped(PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

fn drop_files(h: &mut Harness<'_, Option<DiffrollApp>>, paths: &[PathBuf]) {
    for p in paths {
        h.input_mut()
            .dropped_files
            .push(Arc::new(Dropped(p.clone())));
    }
}

fn folder_bytes(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| (e.path().to_path_buf(), std::fs::read(e.path()).unwrap()))
        .collect();
    files.sort();
    files
}

/// Answers every save dialog with one path.
struct SaveTo(PathBuf);

impl Dialogs for SaveTo {
    fn save_file(&self, _title: &str, _name: &str, _extension: &str) -> Option<PathBuf> {
        Some(self.0.clone())
    }
}

fn harness(model: &Path, export: &Path, steps: usize) -> Harness<'static, Option<DiffrollApp>> {
    harness_with(model, export, |s| s.steps = steps)
}

/// [`harness`] with settings of the test's own (`change` edits the defaults).
fn harness_with(
    model: &Path,
    export: &Path,
    change: impl FnOnce(&mut Settings),
) -> Harness<'static, Option<DiffrollApp>> {
    data_dir();
    let mut settings = Settings {
        model: Some(model.to_path_buf()),
        device: DeviceRequest::Cpu,
        // The model's recommended settings count as applied, so the test's stay.
        defaults_from: Some(model.to_path_buf()),
        ..Settings::default()
    };
    change(&mut settings);
    let dialogs: Arc<dyn Dialogs> = Arc::new(SaveTo(export.to_path_buf()));
    Harness::builder()
        .with_size([1100.0, 700.0])
        .build_ui_state(
            move |ui, slot: &mut Option<DiffrollApp>| {
                slot.get_or_insert_with(|| {
                    DiffrollApp::with_settings(settings.clone(), dialogs.clone(), ui.ctx().clone())
                })
                .show(ui);
            },
            None,
        )
}

fn app<'h>(h: &'h Harness<'_, Option<DiffrollApp>>) -> &'h DiffrollApp {
    h.state().as_ref().expect("app built on the first frame")
}

/// Steps the UI until `done` holds (the worker runs on its own thread in real time).
fn step_until(
    h: &mut Harness<'_, Option<DiffrollApp>>,
    what: &str,
    done: impl Fn(&DiffrollApp) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        h.step();
        if h.state().as_ref().is_some_and(&done) {
            return;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The slider labelled `label` (its text is a node of the same label beside it).
fn slider<'h>(h: &'h Harness<'_, Option<DiffrollApp>>, label: &'h str) -> egui_kittest::Node<'h> {
    h.query_all_by_label(label)
        .find(|n| n.accesskit_node().numeric_value().is_some())
        .unwrap_or_else(|| panic!("no slider labelled {label}"))
}

fn is_disabled(h: &Harness<'_, Option<DiffrollApp>>, label: &str) -> bool {
    h.get_by_label(label).accesskit_node().is_disabled()
}

#[test]
fn generate_shows_steps_then_a_roll_and_export_writes_the_same_notes() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny::model_folder(&model);
    let export = tmp.path().join("take.mid");
    let mut h = harness(&model, &export, 12);
    step_until(&mut h, "model loaded", |a| {
        matches!(a.model, ModelStatus::Ready { .. })
    });
    assert!(is_disabled(&h, "Play"), "nothing to play before a take");
    assert!(is_disabled(&h, "Export .mid"));

    h.get_by_label("Generate").click();
    step_until(&mut h, "generation finished", |a| {
        !a.is_generating() && !a.history.is_empty()
    });
    let a = app(&h);
    assert_eq!(a.previews_seen, 12, "every denoising step is shown");
    let roll = a.selected_roll().expect("the take is selected").clone();
    let shown = a.on_screen().expect("a roll on screen");
    assert_eq!(shown.steps, roll.steps());
    assert!(!is_disabled(&h, "Play"));
    assert!(!is_disabled(&h, "Export .mid"));
    assert!(!is_disabled(&h, "Export .wav"));

    h.get_by_label("Export .mid").click();
    step_until(&mut h, "export written", |a| {
        a.messages.iter().any(|m| m.text.starts_with("exported"))
    });
    let song = diffroll::midi::read_file(&export).expect("the export reads back");
    let keys = |notes: &[diffroll::roll::Note]| {
        let mut k: Vec<_> = notes.iter().map(|n| n.key()).collect();
        k.sort();
        k
    };
    assert_eq!(keys(&song.notes), keys(&roll.notes()));

    // An independent parser agrees on the number of note-ons.
    let bytes = std::fs::read(&export).unwrap();
    let file = midi_msg::MidiFile::from_midi(&bytes).expect("midi-msg reads the export");
    let note_ons = file
        .tracks
        .iter()
        .flat_map(|t| t.events())
        .filter(|e| {
            matches!(
                e.event,
                midi_msg::MidiMsg::ChannelVoice {
                    msg: midi_msg::ChannelVoiceMsg::NoteOn { velocity, .. },
                    ..
                } if velocity > 0
            )
        })
        .count();
    assert_eq!(note_ons, roll.note_count());
}

#[test]
fn regenerate_bars_gives_new_takes_on_those_bars_and_keeps_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny::model_folder(&model);
    let mut h = harness_with(&model, &tmp.path().join("x.mid"), |s| {
        s.steps = 4;
        s.variations = 2;
    });
    step_until(&mut h, "model loaded", |a| {
        matches!(a.model, ModelStatus::Ready { .. })
    });
    assert!(is_disabled(&h, "Regenerate bars"), "no take to rework yet");
    h.get_by_label("Generate").click();
    step_until(&mut h, "first take", |a| {
        !a.is_generating() && a.history.len() == 1
    });
    assert!(!is_disabled(&h, "Regenerate bars"));
    h.state_mut().as_mut().unwrap().rework_bars = (4, 3);
    // The second variation is on screen: that is the one reworked.
    h.state_mut().as_mut().unwrap().select(0, 1);
    h.get_by_label("Regenerate bars").click();
    step_until(&mut h, "reworked take", |a| {
        !a.is_generating() && a.history.len() == 2
    });
    let a = app(&h);
    assert_eq!(a.rework_bars, (3, 4), "bars put in order");
    let before = a.history[0].rolls[1].clone();
    let takes = &a.history[1].rolls;
    assert_eq!(takes.len(), 2);
    let span = 32u32..64;
    let around = |roll: &diffroll::roll::Roll| -> Vec<(u8, u32, u32)> {
        let mut notes: Vec<_> = roll
            .notes()
            .iter()
            .filter(|n| !span.contains(&n.start))
            .map(|n| {
                let end = if n.start < span.start {
                    n.end.min(span.start)
                } else {
                    n.end
                };
                (n.pitch, n.start, end)
            })
            .collect();
        notes.sort_unstable();
        notes
    };
    for take in takes {
        assert_eq!(take.style, before.style, "the take's style is kept");
        assert_eq!(
            around(take),
            around(&before),
            "bars 1-2 and 5-8 as they were"
        );
        assert!(
            take.notes()
                .iter()
                .all(|n| !span.contains(&n.start) || n.end <= span.end),
            "new notes end by the end of bar 4"
        );
    }
}

#[test]
fn clean_up_rounds_run_after_the_main_pass_and_are_shown_too() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny::model_folder(&model);
    let mut h = harness_with(&model, &tmp.path().join("take.mid"), |s| {
        s.steps = 6;
        s.restart = diffroll::model::Restart {
            t: 100,
            steps: 3,
            rounds: 2,
        };
    });
    step_until(&mut h, "model loaded", |a| {
        matches!(a.model, ModelStatus::Ready { .. })
    });
    h.get_by_label("Generate").click();
    step_until(&mut h, "generation finished", |a| {
        !a.is_generating() && !a.history.is_empty()
    });
    assert_eq!(
        app(&h).previews_seen,
        6 + 2 * 3,
        "main pass, then two rounds of 3"
    );
    assert!(app(&h).selected_roll().is_some());
}

#[test]
fn a_model_that_recommends_refining_gets_it_and_the_checkbox_turns_it_off_and_on() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny::model_folder(&model);
    let mut card = ModelCard::load(&model).unwrap();
    let refine = diffroll::model::Refine {
        steps: 2,
        rate: 0.1,
        keep: 0.3,
        temperature: 2.0,
    };
    card.defaults.refine = Some(refine);
    card.save(&model).unwrap();
    let mut h = harness_with(&model, &tmp.path().join("take.mid"), |s| {
        s.steps = 3;
        // As on first start: the model's recommendations are not applied yet.
        s.defaults_from = None;
    });
    step_until(&mut h, "model loaded", |a| {
        matches!(a.model, ModelStatus::Ready { .. })
    });
    h.run_steps(2);
    assert_eq!(
        app(&h).settings.refine,
        Some(refine),
        "the card's refinement"
    );
    h.get_by_label("Generate").click();
    step_until(&mut h, "refined take finished", |a| {
        !a.is_generating() && !a.history.is_empty()
    });
    h.get_by_label("Refine notes").click();
    h.run_steps(2);
    assert_eq!(app(&h).settings.refine, None);
    h.get_by_label("Refine notes").click();
    h.run_steps(2);
    assert_eq!(
        app(&h).settings.refine,
        Some(diffroll::model::Refine::RECOMMENDED)
    );
}

#[test]
fn each_style_keeps_its_own_guidance_and_the_slider_shows_the_chosen_styles() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny::model_folder(&model);
    let mut card = ModelCard::load(&model).unwrap();
    card.defaults.guidance = "1,folk=2.5".parse().unwrap();
    card.save(&model).unwrap();
    let mut h = harness_with(&model, &tmp.path().join("unused.mid"), |s| {
        s.defaults_from = None;
    });
    step_until(&mut h, "model loaded", |a| {
        matches!(a.model, ModelStatus::Ready { .. })
    });
    h.run_steps(2);
    assert_eq!(app(&h).settings.guidance(), card.defaults.guidance);
    let value = |h: &Harness<'_, Option<DiffrollApp>>, label: &str| {
        slider(h, label).accesskit_node().numeric_value()
    };
    assert_eq!(
        value(&h, "Guidance"),
        Some(1.0),
        "any style: the common scale"
    );
    let pick = |h: &mut Harness<'static, Option<DiffrollApp>>, style: &str| {
        h.get_by_label("Style").click();
        h.run_steps(2);
        h.get_by_label(style).click();
        h.run_steps(2);
    };
    pick(&mut h, "folk");
    assert_eq!(value(&h, "Guidance (folk)"), Some(2.5));
    slider(&h, "Guidance (folk)").set_value_accesskit(3.0);
    h.run_steps(2);
    pick(&mut h, "chorale");
    assert_eq!(value(&h, "Guidance (chorale)"), Some(1.0));
    slider(&h, "Guidance (chorale)").set_value_accesskit(1.5);
    h.run_steps(2);
    pick(&mut h, "any");
    slider(&h, "Guidance").set_value_accesskit(2.0);
    h.run_steps(2);
    let g = app(&h).settings.guidance();
    assert_eq!(
        (g.for_style(Style::Folk), g.for_style(Style::Chorale)),
        (3.0, 1.5)
    );
    assert_eq!(
        (g.for_style(Style::Polyphony), g.for_style(Style::Classical)),
        (2.0, 2.0),
        "styles without their own follow the common scale"
    );
}

#[test]
fn a_key_picked_in_the_settings_is_the_key_of_the_next_take() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny::model_folder(&model);
    let mut h = harness_with(&model, &tmp.path().join("unused.mid"), |s| {
        s.steps = 3;
        s.lock_seed = true;
    });
    step_until(&mut h, "model loaded", |a| {
        matches!(a.model, ModelStatus::Ready { .. })
    });
    // The tiny model's card has no key profiles: a typical key is the drawn one.
    assert_eq!(app(&h).settings.key, KeyChoice::Typical);
    let take = |h: &mut Harness<'static, Option<DiffrollApp>>, n: usize| {
        h.get_by_label("Generate").click();
        step_until(h, "take finished", |a| {
            !a.is_generating() && a.history.len() == n
        });
        app(h)
            .selected_roll()
            .expect("the take is on screen")
            .clone()
    };
    let drawn = take(&mut h, 1);
    let root = drawn.diatonic_root().expect("the tiny model draws notes");
    // Another key, picked in the Key box (one near the top of its list, in view).
    let target = if root == 0 { 1 } else { 0 };
    h.get_by_label("Key").click();
    h.run_steps(2);
    h.get_by_label(KEY_NAMES[usize::from(target)]).click();
    h.run_steps(2);
    assert_eq!(app(&h).settings.key, KeyChoice::Root(target));
    let keyed = take(&mut h, 2);
    assert_eq!(
        keyed.notes(),
        drawn.transposed(drawn.shift_into(target)).notes()
    );
}

#[test]
fn escape_cancels_within_one_step_and_keeps_the_app_usable() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny::model_folder(&model);
    let mut h = harness(&model, &tmp.path().join("unused.mid"), 1000);
    step_until(&mut h, "model loaded", |a| {
        matches!(a.model, ModelStatus::Ready { .. })
    });
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::G);
    step_until(&mut h, "first step", |a| a.previews_seen >= 1);
    h.key_press(egui::Key::Escape);
    step_until(&mut h, "cancelled", |a| !a.is_generating());
    let a = app(&h);
    // Counted on the model thread: the UI may lag behind it, the model may not run ahead.
    let overrun = a
        .last_cancel_overrun
        .expect("the worker reports the cancel");
    assert!(overrun <= 1, "{overrun} steps ran after Esc");
    assert!(a.previews_seen < 1000);
    assert!(a.history.is_empty(), "a cancelled take is not kept");
    assert!(a.messages.iter().any(|m| m.text.contains("cancelled")));
    assert!(!is_disabled(&h, "Generate"));
}

#[test]
fn a_broken_model_is_reported_in_the_window() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("broken");
    tiny::model_folder(&model);
    std::fs::write(model.join(diffroll::model::UNET_FILE), b"not weights").unwrap();
    let mut h = harness(&model, &tmp.path().join("unused.mid"), 10);
    step_until(&mut h, "load failure", |a| {
        matches!(a.model, ModelStatus::Missing(_))
    });
    let a = app(&h);
    let last = a.messages.last().expect("an error message");
    assert!(last.error);
    assert!(last.text.contains("unet"), "{}", last.text);
    assert!(is_disabled(&h, "Generate"));
}

#[test]
fn dropped_files_fine_tune_into_a_new_selected_model_and_leave_the_base_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny::model_folder(&model);
    let mut base = ModelCard::load(&model).unwrap();
    base.defaults.guidance = "1,folk=2".parse().unwrap();
    base.save(&model).unwrap();
    let before = folder_bytes(&model);
    let pdf = tmp.path().join("score.pdf");
    std::fs::write(&pdf, b"%PDF-1.4 not music").unwrap();
    let folk = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/midi/folk");
    let mut h = harness(&model, &tmp.path().join("unused.mid"), 10);
    step_until(&mut h, "model loaded", |a| {
        matches!(a.model, ModelStatus::Ready { .. })
    });
    drop_files(&mut h, &[folk, pdf]);
    step_until(&mut h, "files read", |a| a.finetune.intake.is_some());
    let intake = app(&h).finetune.intake.clone().unwrap();
    assert!(intake.windows() > 0);
    assert!(
        intake.rejected.iter().any(|r| r.path.ends_with("score.pdf")
            && r.reason.contains("not a Standard MIDI File")),
        "{:?}",
        intake.rejected
    );
    h.state_mut().as_mut().unwrap().finetune.steps = 3;
    h.state_mut().as_mut().unwrap().finetune.name = "kittest folk".into();
    h.run_steps(2);
    h.get_by_label("Start fine-tune").click();
    step_until(&mut h, "fine-tune finished and the new model loaded", |a| {
        a.finetune.running.is_none()
            && matches!(&a.model, ModelStatus::Ready { name, .. } if name == "kittest folk")
    });
    let saved = data_dir().join("models").join("kittest folk");
    assert!(saved.join(diffroll::model::CARD_FILE).is_file());
    let card = diffroll::model::ModelCard::load(&saved).unwrap();
    assert!(
        card.defaults.style.is_some(),
        "the model generates in its learned style"
    );
    assert_eq!(
        card.defaults.guidance,
        diffroll::model::Guidance::uniform(1.0),
        "the base model's style guidance does not carry over to the user's music"
    );
    let style = card.defaults.style.unwrap();
    assert_eq!(
        card.single_line.iter().collect::<Vec<_>>(),
        vec![&style],
        "the user's tunes are one voice, so their style is decoded as one line"
    );
    assert!(
        !card.voices.contains_key(&style),
        "one line, not a fixed number of voices"
    );
    assert_eq!(folder_bytes(&model), before, "the base model is untouched");
    assert!(
        !is_disabled(&h, "Generate"),
        "the new model is ready to generate"
    );
}

#[test]
fn a_bad_drop_explains_itself_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny::model_folder(&model);
    let pdf = tmp.path().join("notes.pdf");
    std::fs::write(&pdf, b"%PDF-1.4").unwrap();
    let short = tmp.path().join("short.mid");
    let one_bar = diffroll::roll::Roll::from_notes(&[diffroll::roll::Note::new(60, 0, 16, 80)], 16);
    std::fs::write(&short, diffroll::midi::write_roll(&one_bar, "short")).unwrap();
    let models_before = diffroll::model::catalog::list_in(&data_dir().join("models"));
    let mut h = harness(&model, &tmp.path().join("unused.mid"), 10);
    step_until(&mut h, "model loaded", |a| {
        matches!(a.model, ModelStatus::Ready { .. })
    });
    drop_files(&mut h, &[pdf, short]);
    step_until(&mut h, "files read", |a| a.finetune.intake.is_some());
    h.run_steps(2);
    let intake = app(&h).finetune.intake.clone().unwrap();
    assert_eq!(intake.windows(), 0);
    assert_eq!(intake.rejected.len(), 2);
    assert!(
        intake
            .rejected
            .iter()
            .any(|r| r.reason.contains("bars long")),
        "{:?}",
        intake.rejected
    );
    assert!(is_disabled(&h, "Start fine-tune"));
    h.get_by_label("Close").click();
    h.run_steps(2);
    assert!(!app(&h).finetune.open);
    assert_eq!(
        diffroll::model::catalog::list_in(&data_dir().join("models")),
        models_before,
        "no model was made"
    );
    assert!(matches!(&app(&h).model, ModelStatus::Ready { name, .. } if name == "tiny"));
}

#[test]
fn play_reports_where_the_sound_goes_or_why_it_cannot() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny::model_folder(&model);
    let mut h = harness(&model, &tmp.path().join("unused.mid"), 5);
    step_until(&mut h, "model loaded", |a| {
        matches!(a.model, ModelStatus::Ready { .. })
    });
    h.get_by_label("Generate").click();
    step_until(&mut h, "a take", |a| !a.history.is_empty());
    h.key_press(egui::Key::Space);
    // With a sound card: "playing on <device>"; without one (CI): the reason, in the window.
    step_until(&mut h, "a playback status", |a| {
        a.messages
            .iter()
            .any(|m| m.text.starts_with("playing on") || m.text.starts_with("playback:"))
    });
    let a = app(&h);
    let status = a
        .messages
        .iter()
        .rev()
        .find(|m| m.text.starts_with("playing on") || m.text.starts_with("playback:"))
        .unwrap();
    if status.error {
        assert!(
            status.text.contains("audio") || status.text.contains("device"),
            "{}",
            status.text
        );
        // (Space now would try again, so it is not pressed.)
        step_until(&mut h, "the failed playback ends", |a| !a.is_playing());
    } else {
        h.key_press(egui::Key::Space);
        h.run_steps(3);
        assert!(!app(&h).is_playing(), "Space stops");
    }
    assert!(!is_disabled(&h, "Generate"));
}
