//! The app through egui_kittest: a tiny model with random weights stands in for the real one
//! (the app must not care). Generate shows every denoising step and then a roll, enables Play
//! and Export; Export writes a MIDI file whose notes read back equal to the roll's, also by
//! an independent parser; Esc cancels within a step. An opened MIDI file is a take of its own
//! length whose notes and velocities Play and Export keep; Regenerate bars works on any bar of
//! it; the model's image (fog) shows while it works; a thousand takes keep memory bounded.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diffroll::app::{Dialogs, DiffrollApp, ModelStatus, Origin, Settings};
use diffroll::device::DeviceRequest;
use diffroll::model::{KeyChoice, ModelCard};
use diffroll::roll::{KEY_NAMES, Style};
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};

mod tiny;

/// Counts the bytes this test binary holds on the heap (the memory test reads it: resident
/// memory alone also counts what the graphics driver and the allocator keep).
struct Counting;

static LIVE: AtomicI64 = AtomicI64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; it only counts sizes.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: the caller's guarantees for `alloc` are passed on as they are.
        unsafe { std::alloc::System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
        // SAFETY: `ptr` came from `System` with `layout`, as the caller guarantees.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as i64 - layout.size() as i64, Ordering::Relaxed);
        // SAFETY: as for `dealloc`, and `new` is the caller's valid new size.
        unsafe { std::alloc::System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

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

/// Answers every save dialog with one path, and open dialogs with the file set last (none:
/// cancelled).
struct SaveTo(PathBuf, Mutex<Option<PathBuf>>);

impl SaveTo {
    fn new(export: &Path) -> Arc<SaveTo> {
        Arc::new(SaveTo(export.to_path_buf(), Mutex::new(None)))
    }

    fn will_open(&self, path: &Path) {
        *self.1.lock().unwrap() = Some(path.to_path_buf());
    }
}

impl Dialogs for SaveTo {
    fn save_file(&self, _title: &str, _name: &str, _extension: &str) -> Option<PathBuf> {
        Some(self.0.clone())
    }

    fn open_file(&self, _title: &str, extensions: &[&str]) -> Option<PathBuf> {
        assert!(extensions.contains(&"mid"), "{extensions:?}");
        self.1.lock().unwrap().clone()
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
    harness_with_dialogs(model, SaveTo::new(export), change, false)
}

/// A wgpu renderer for a harness, with the roll's shader pipeline installed, where wgpu finds
/// an adapter (`None` elsewhere, unless `DIFFROLL_REQUIRE_WGPU` says there must be one).
fn gpu_renderer() -> Option<(egui_kittest::wgpu::WgpuTestRenderer, RenderState)> {
    if diffroll::device::adapters().is_empty() {
        assert!(
            std::env::var_os("DIFFROLL_REQUIRE_WGPU").is_none(),
            "DIFFROLL_REQUIRE_WGPU is set but wgpu finds no adapter"
        );
        eprintln!("note: no wgpu adapter here; drawing on the GPU not checked");
        return None;
    }
    let state = egui_kittest::wgpu::create_render_state(
        egui_kittest::wgpu::default_wgpu_setup(),
        eframe::egui_wgpu::RendererOptions::PREDICTABLE,
    );
    Some((
        egui_kittest::wgpu::WgpuTestRenderer::from_render_state(state.clone()),
        state,
    ))
}

type RenderState = eframe::egui_wgpu::RenderState;

/// [`harness_with`] answering dialogs with `dialogs`; with `gpu`, drawn through wgpu (with
/// the roll's own shader) where an adapter exists, so `render` and texture frees are real.
fn harness_with_dialogs(
    model: &Path,
    dialogs: Arc<SaveTo>,
    change: impl FnOnce(&mut Settings),
    gpu: bool,
) -> Harness<'static, Option<DiffrollApp>> {
    data_dir();
    let (builder, render_state) = match gpu.then(gpu_renderer).flatten() {
        Some((renderer, state)) => (Harness::builder().renderer(renderer), Some(state)),
        None => (Harness::builder(), None),
    };
    let mut settings = Settings {
        model: Some(model.to_path_buf()),
        device: DeviceRequest::Cpu,
        // The model's recommended settings count as applied, so the test's stay.
        defaults_from: Some(model.to_path_buf()),
        ..Settings::default()
    };
    change(&mut settings);
    let dialogs: Arc<dyn Dialogs> = dialogs;
    builder.with_size([1100.0, 700.0]).build_ui_state(
        move |ui, slot: &mut Option<DiffrollApp>| {
            slot.get_or_insert_with(|| {
                diffroll::app::roll_view::install(ui.ctx(), render_state.as_ref());
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
    let before = a.history[0].variations[1].roll.clone();
    let takes: Vec<diffroll::roll::Roll> = a.history[1]
        .variations
        .iter()
        .map(|v| v.roll.clone())
        .collect();
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
    for take in &takes {
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
    assert!(
        card.key_profile(style).is_some(),
        "pieces in a typical key go to the keys of the user's tunes"
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

/// Notes as (pitch, start, end, velocity), in sixteenth-note steps.
type Played = Vec<(u8, u32, u32, u8)>;

/// Sixteen bars with velocities that differ note to note: a melody in quarters (one note
/// sounding from bar 9 into bar 10), a bass note a bar, and the piece's last note ending it.
fn tune() -> Played {
    let mut notes = Vec::new();
    for i in 0..64u32 {
        let start = i * 4;
        if start == 140 {
            continue;
        }
        notes.push((
            60 + (i * 5 % 12) as u8,
            start,
            start + 3,
            (30 + i * 7 % 90) as u8,
        ));
    }
    notes.push((79, 140, 150, 101));
    for bar in 0..16u32 {
        notes.push((
            43 + (bar % 5) as u8,
            bar * 16,
            bar * 16 + 16,
            (40 + bar * 3) as u8,
        ));
    }
    notes.sort_by_key(|&(p, s, e, v)| (s, p, e, v));
    notes
}

/// A type-1 MIDI file written with midly itself: a tempo track at `bpm`, and one track of
/// `notes` on `channel` (0-based) at 96 ticks a quarter.
fn midi_file(notes: &[(u8, u32, u32, u8)], bpm: f64, channel: u8) -> Vec<u8> {
    use midly::num::{u4, u7, u15, u24, u28};
    use midly::{
        Format, Header, MetaMessage, MidiMessage, Smf, Timing, TrackEvent, TrackEventKind,
    };
    let per_step = 24u32;
    let mut events: Vec<(u32, bool, u8, u8)> = notes
        .iter()
        .flat_map(|&(p, s, e, v)| [(s * per_step, true, p, v), (e * per_step, false, p, 0)])
        .collect();
    events.sort_by_key(|&(t, on, p, _)| (t, on, p));
    let meta = |m| TrackEvent {
        delta: u28::new(0),
        kind: TrackEventKind::Meta(m),
    };
    let tempo = (60_000_000.0 / bpm).round() as u32;
    let conductor = vec![
        meta(MetaMessage::Tempo(u24::new(tempo))),
        meta(MetaMessage::EndOfTrack),
    ];
    let mut track = Vec::new();
    let mut last = 0;
    for (tick, on, key, vel) in events {
        let message = if on {
            MidiMessage::NoteOn {
                key: u7::new(key),
                vel: u7::new(vel),
            }
        } else {
            MidiMessage::NoteOff {
                key: u7::new(key),
                vel: u7::new(0),
            }
        };
        track.push(TrackEvent {
            delta: u28::new(tick - last),
            kind: TrackEventKind::Midi {
                channel: u4::new(channel),
                message,
            },
        });
        last = tick;
    }
    track.push(meta(MetaMessage::EndOfTrack));
    let smf = Smf {
        header: Header::new(Format::Parallel, Timing::Metrical(u15::new(96))),
        tracks: vec![conductor, track],
    };
    let mut bytes = Vec::new();
    smf.write_std(&mut bytes).unwrap();
    bytes
}

/// The notes of a MIDI file as midly reads them: each note-on paired with the next note-off of
/// its channel and key, ticks counted in sixteenths; sorted as [`tune`] sorts.
fn notes_by_midly(bytes: &[u8]) -> Played {
    use midly::{MidiMessage, Smf, Timing, TrackEventKind};
    let smf = Smf::parse(bytes).expect("midly reads the file");
    let Timing::Metrical(tpq) = smf.header.timing else {
        panic!("metrical timing expected");
    };
    let per_step = u64::from(tpq.as_int()) / 4;
    let mut notes = Vec::new();
    for track in &smf.tracks {
        let mut tick = 0u64;
        let mut open: std::collections::HashMap<(u8, u8), Vec<(u64, u8)>> = Default::default();
        for event in track {
            tick += u64::from(event.delta.as_int());
            if let TrackEventKind::Midi { channel, message } = event.kind {
                let ch = channel.as_int();
                match message {
                    MidiMessage::NoteOn { key, vel } if vel.as_int() > 0 => open
                        .entry((ch, key.as_int()))
                        .or_default()
                        .push((tick, vel.as_int())),
                    MidiMessage::NoteOn { key, .. } | MidiMessage::NoteOff { key, .. } => {
                        let queue = open.entry((ch, key.as_int())).or_default();
                        if !queue.is_empty() {
                            let (start, vel) = queue.remove(0);
                            notes.push((
                                key.as_int(),
                                (start / per_step) as u32,
                                (tick / per_step) as u32,
                                vel,
                            ));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    notes.sort_by_key(|&(p, s, e, v)| (s, p, e, v));
    notes
}

fn played(notes: &[diffroll::roll::Note]) -> Played {
    let mut out: Played = notes
        .iter()
        .map(|n| (n.pitch, n.start, n.end, n.velocity))
        .collect();
    out.sort_by_key(|&(p, s, e, v)| (s, p, e, v));
    out
}

#[test]
fn an_opened_file_is_a_take_of_its_length_that_plays_and_exports_its_own_notes() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny::model_folder(&model);
    let file = tmp.path().join("tune.mid");
    std::fs::write(&file, midi_file(&tune(), 90.0, 0)).unwrap();
    let export = tmp.path().join("out.mid");
    let dialogs = SaveTo::new(&export);
    dialogs.will_open(&file);
    let mut h = harness_with_dialogs(&model, dialogs, |s| s.steps = 3, false);
    h.get_by_label("Open MIDI…").click();
    step_until(&mut h, "the file opened", |a| a.history.len() == 1);
    let a = app(&h);
    let take = &a.history[0];
    assert!(matches!(&take.origin, Origin::Opened { path } if *path == file));
    assert_eq!((take.steps(), take.bars()), (256, 16), "sixteen bars");
    assert_eq!(take.variations.len(), 1);
    assert_eq!(
        played(&take.variations[0].notes()),
        tune(),
        "its notes and velocities"
    );
    assert_eq!(a.selected, Some((0, 0)), "the opened take is on screen");
    assert_eq!(a.on_screen().expect("a roll on screen").steps, 256);
    assert!(a.messages.last().unwrap().text.contains("16 bars"));

    // Play: the file's tempo, its velocities.
    let piece = a.piece_to_use().expect("something to play");
    assert_eq!(piece.tempo_bpm, 90.0);
    let mut velocities: Vec<u8> = piece
        .sequence()
        .events()
        .iter()
        .filter_map(|e| match e.event {
            diffroll::audio::Event::NoteOn { velocity, .. } => Some(velocity),
            _ => None,
        })
        .collect();
    velocities.sort_unstable();
    let mut expected: Vec<u8> = tune().iter().map(|n| n.3).collect();
    expected.sort_unstable();
    assert_eq!(velocities, expected);
    assert!(!is_disabled(&h, "Play"));

    h.get_by_label("Export .mid").click();
    step_until(&mut h, "export written", |a| {
        a.messages.iter().any(|m| m.text.starts_with("exported"))
    });
    let bytes = std::fs::read(&export).unwrap();
    assert_eq!(
        notes_by_midly(&bytes),
        tune(),
        "the same notes written back"
    );
}

#[test]
fn a_file_without_tracks_or_pitched_notes_says_so_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny::model_folder(&model);
    let no_tracks = tmp.path().join("empty.mid");
    // A header that announces no tracks, and nothing after it.
    std::fs::write(&no_tracks, b"MThd\0\0\0\x06\0\x01\0\0\0\x60").unwrap();
    let drums = tmp.path().join("drums.mid");
    std::fs::write(
        &drums,
        midi_file(&[(36, 0, 2, 100), (38, 4, 6, 90)], 120.0, 9),
    )
    .unwrap();
    let dialogs = SaveTo::new(&tmp.path().join("unused.mid"));
    let mut h = harness_with_dialogs(&model, dialogs.clone(), |s| s.steps = 2, false);
    step_until(&mut h, "model loaded", |a| {
        matches!(a.model, ModelStatus::Ready { .. })
    });
    h.get_by_label("Generate").click();
    step_until(&mut h, "a take", |a| {
        !a.is_generating() && a.history.len() == 1
    });
    let shown = app(&h).on_screen().unwrap().version;
    for (file, says) in [(&no_tracks, "no tracks"), (&drums, "no pitched notes")] {
        dialogs.will_open(file);
        let before = app(&h).messages.len();
        h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::O);
        step_until(&mut h, "the file refused", |a| a.messages.len() > before);
        let a = app(&h);
        let last = a.messages.last().unwrap();
        assert!(last.error && last.text.contains(says), "{}", last.text);
        assert!(
            last.text.contains("choose"),
            "says what to do: {}",
            last.text
        );
        assert_eq!(a.history.len(), 1, "no take added");
        assert_eq!(a.selected, Some((0, 0)));
        assert_eq!(
            a.on_screen().unwrap().version,
            shown,
            "the view is unchanged"
        );
    }
}

#[test]
fn dropping_one_midi_file_asks_whether_to_open_it_or_fine_tune_on_it() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny::model_folder(&model);
    let file = tmp.path().join("tune.mid");
    std::fs::write(&file, midi_file(&tune(), 120.0, 0)).unwrap();
    let mut h = harness(&model, &tmp.path().join("unused.mid"), 3);
    drop_files(&mut h, std::slice::from_ref(&file));
    h.run_steps(2);
    assert_eq!(app(&h).drop_choice.as_deref(), Some(file.as_path()));
    assert!(!app(&h).finetune.open, "nothing happens before the choice");
    h.get_by_label("Fine-tune on it");
    h.get_by_label("Open").click();
    step_until(&mut h, "the file opened", |a| a.history.len() == 1);
    assert!(app(&h).drop_choice.is_none());
    assert!(!app(&h).finetune.open);

    drop_files(&mut h, std::slice::from_ref(&file));
    h.run_steps(2);
    h.get_by_label("Fine-tune on it").click();
    step_until(&mut h, "the file read for fine-tuning", |a| {
        a.finetune.intake.is_some()
    });
    let a = app(&h);
    assert!(a.finetune.open && a.drop_choice.is_none());
    assert_eq!(a.finetune.intake.as_ref().unwrap().pieces.len(), 1);
    assert_eq!(a.history.len(), 1, "fine-tuning opens no take");
}

#[test]
fn regenerating_bars_10_to_11_of_a_sixteen_bar_file_changes_only_those_bars() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny::model_folder(&model);
    let file = tmp.path().join("tune.mid");
    std::fs::write(&file, midi_file(&tune(), 100.0, 0)).unwrap();
    let dialogs = SaveTo::new(&tmp.path().join("unused.mid"));
    dialogs.will_open(&file);
    let mut h = harness_with_dialogs(
        &model,
        dialogs,
        |s| {
            s.steps = 3;
            s.variations = 2;
        },
        false,
    );
    step_until(&mut h, "model loaded", |a| {
        matches!(a.model, ModelStatus::Ready { .. })
    });
    h.get_by_label("Open MIDI…").click();
    step_until(&mut h, "the file opened", |a| a.history.len() == 1);
    h.state_mut().as_mut().unwrap().rework_bars = (11, 10);
    h.run_steps(2);
    h.get_by_label("Regenerate bars").click();
    step_until(&mut h, "reworked take", |a| {
        !a.is_generating() && a.history.len() == 2
    });
    let a = app(&h);
    assert_eq!(a.rework_bars, (10, 11));
    let take = &a.history[1];
    assert!(
        matches!(
            take.origin,
            Origin::Reworked {
                from: 1,
                bars: (10, 11),
                ..
            }
        ),
        "{:?}",
        take.origin
    );
    assert_eq!(
        (take.steps(), take.bars(), take.variations.len()),
        (256, 16, 2)
    );
    assert_eq!(take.tempo_bpm, Some(100.0), "the file's tempo stays");
    let span = 144u32..176;
    // Outside bars 10-11 the file's notes, velocities and all; the one sounding into bar 10
    // ends where bar 10 starts.
    let kept: Played = tune()
        .into_iter()
        .filter(|n| !span.contains(&n.1))
        .map(|(p, s, e, v)| (p, s, if s < span.start { e.min(span.start) } else { e }, v))
        .collect();
    for variation in &take.variations {
        let notes = played(&variation.notes());
        let outside: Played = notes
            .iter()
            .copied()
            .filter(|n| !span.contains(&n.1))
            .collect();
        assert_eq!(outside, kept);
        assert!(
            notes
                .iter()
                .filter(|n| span.contains(&n.1))
                .all(|n| n.2 <= span.end),
            "new notes end by the end of bar 11"
        );
        assert_eq!(variation.roll.steps(), 256);
    }
}

#[test]
fn the_fog_shows_the_models_image_while_it_works_and_the_toggle_switches_to_notes() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny::model_folder(&model);
    let mut h = harness(&model, &tmp.path().join("unused.mid"), 1000);
    step_until(&mut h, "model loaded", |a| {
        matches!(a.model, ModelStatus::Ready { .. })
    });
    assert!(app(&h).settings.show_fog, "on by default");
    h.get_by_label("Generate").click();
    step_until(&mut h, "a preview", |a| a.previews_seen >= 1);
    let a = app(&h);
    let fog = a.live_fog().expect("the preview carries the model's image");
    assert_eq!(fog.steps(), 128);
    for (p, t) in [(0, 0), (60, 17), (127, 127)] {
        assert!((0.0..=1.0).contains(&fog.sustain(p, t)) && (0.0..=1.0).contains(&fog.onset(p, t)));
    }
    assert!(a.on_screen().unwrap().has_fog());

    h.get_by_label("Fog").click();
    h.run_steps(2);
    assert!(!app(&h).settings.show_fog);
    assert!(
        !app(&h).on_screen().unwrap().has_fog(),
        "the notes of this step"
    );
    h.get_by_label("Fog").click();
    h.run_steps(2);
    assert!(app(&h).settings.show_fog);
    assert!(app(&h).on_screen().unwrap().has_fog());

    h.key_press(egui::Key::Escape);
    step_until(&mut h, "cancelled", |a| !a.is_generating());
    h.state_mut().as_mut().unwrap().settings.steps = 3;
    h.get_by_label("Generate").click();
    step_until(&mut h, "a take", |a| !a.history.is_empty());
    let a = app(&h);
    assert!(
        !a.on_screen().unwrap().has_fog(),
        "a finished take is its notes"
    );
    assert!(a.live_fog().is_none());
}

/// Resident memory of this process, in bytes.
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

#[test]
fn a_thousand_takes_keep_memory_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny::model_folder(&model);
    // With a wgpu renderer the thumbnails are real textures, made and freed, and the window is
    // drawn now and then (as eframe does every frame, which also lets wgpu release what was
    // freed); without one the harness keeps every texture upload, so memory is only counted
    // with one.
    let gpu = !diffroll::device::adapters().is_empty();
    let file = tmp.path().join("tune.mid");
    std::fs::write(&file, midi_file(&tune(), 120.0, 0)).unwrap();
    let dialogs = SaveTo::new(&tmp.path().join("unused.mid"));
    dialogs.will_open(&file);
    let mut h = harness_with_dialogs(
        &model,
        dialogs,
        |s| {
            s.steps = 1;
            s.refine = None;
            s.restart.rounds = 0;
        },
        gpu,
    );
    step_until(&mut h, "model loaded", |a| {
        matches!(a.model, ModelStatus::Ready { .. })
    });
    let started = Instant::now();
    let mut resident = Vec::new();
    for n in 1..=1000 {
        // Every tenth take an opened file (sixteen bars), the others generated.
        if n % 10 == 0 {
            h.state_mut().as_mut().unwrap().open_midi();
        } else {
            h.state_mut().as_mut().unwrap().generate();
        }
        step_until(&mut h, "the next take", |a| {
            a.takes_made() == n && !a.is_generating()
        });
        if gpu && n % 10 == 0 {
            h.render().expect("the window draws");
        }
        if n == 300 || n == 1000 {
            resident.push((resident_bytes(), LIVE.load(Ordering::Relaxed)));
        }
    }
    let a = app(&h);
    assert!(a.history.len() <= diffroll::app::MAX_TAKES);
    assert_eq!(a.history.last().unwrap().number, 1000);
    let textures = h.ctx.tex_manager().read().num_allocated();
    assert!(
        textures <= diffroll::app::MAX_TAKES + 4,
        "{textures} textures for {} takes",
        a.history.len()
    );
    let mib = |b: i64| b as f64 / f64::from(1 << 20);
    let [(rss_300, heap_300), (rss_1000, heap_1000)] = resident[..] else {
        unreachable!("two measurements")
    };
    let rss_growth = rss_1000 as i64 - rss_300 as i64;
    let heap_growth = heap_1000 - heap_300;
    eprintln!(
        "1000 takes in {:.0} s; resident {:.1} MiB after 300 takes, {:.1} MiB after 1000 \
         ({:+.1} MiB); heap {:.1} MiB, {:.1} MiB ({:+.2} MiB); {} takes and {textures} textures held",
        started.elapsed().as_secs_f64(),
        mib(rss_300 as i64),
        mib(rss_1000 as i64),
        mib(rss_growth),
        mib(heap_300),
        mib(heap_1000),
        mib(heap_growth),
        a.history.len(),
    );
    // Other tests of this binary allocate at the same time; the growth is only this test's
    // when it runs alone (`cargo test --test app thousand`).
    if runs_alone() {
        assert!(
            heap_growth < 4 << 20,
            "the heap grew {:.1} MiB over 700 takes",
            mib(heap_growth)
        );
        if gpu {
            assert!(
                rss_growth < 32 << 20,
                "resident memory grew {:.1} MiB over 700 takes",
                mib(rss_growth)
            );
        }
    }
}

/// Whether this test binary runs one test at a time (a name filter or one thread).
fn runs_alone() -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let one_thread = std::env::var("RUST_TEST_THREADS").as_deref() == Ok("1")
        || args
            .windows(2)
            .any(|w| w[0] == "--test-threads" && w[1] == "1")
        || args.iter().any(|a| a == "--test-threads=1");
    let filtered = args.iter().any(|a| {
        !a.starts_with('-') && "a_thousand_takes_keep_memory_bounded".contains(a.as_str())
    });
    one_thread || filtered
}

/// [`harness_with_dialogs`] once the model is loaded, opening `file` when asked to.
fn loaded_opening(
    model: &Path,
    file: &Path,
    change: impl FnOnce(&mut Settings),
) -> Harness<'static, Option<DiffrollApp>> {
    let dialogs = SaveTo::new(&file.with_extension("unused.mid"));
    dialogs.will_open(file);
    let mut h = harness_with_dialogs(model, dialogs, change, false);
    step_until(&mut h, "model loaded", |a| {
        matches!(a.model, ModelStatus::Ready { .. })
    });
    h
}

/// Clicks `button` and waits for the take it makes (the history one longer).
fn click_for_take(h: &mut Harness<'_, Option<DiffrollApp>>, button: &str) {
    let before = app(h).takes_made();
    assert!(!is_disabled(h, button), "{button} is enabled");
    h.get_by_label(button).click();
    step_until(h, button, |a| !a.is_generating() && a.takes_made() > before);
}

#[test]
fn the_length_box_makes_a_take_of_that_many_bars() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny::model_folder(&model);
    let mut h = harness_with(&model, &tmp.path().join("unused.mid"), |s| {
        s.steps = 2;
        s.bars = 12;
    });
    step_until(&mut h, "model loaded", |a| {
        matches!(a.model, ModelStatus::Ready { .. })
    });
    click_for_take(&mut h, "Generate");
    let a = app(&h);
    let take = &a.history[0];
    assert!(
        matches!(take.origin, Origin::Long { bars: 12, .. }),
        "{:?}",
        take.origin
    );
    assert_eq!((take.steps(), take.bars()), (192, 12));
    assert!(
        a.previews_seen > 2,
        "both windows are shown as they are written"
    );
    assert_eq!(a.on_screen().unwrap().steps, 192);
    // The box is a setting of its own, saved with the others.
    let json = serde_json::to_string(&a.settings).unwrap();
    let back: Settings = serde_json::from_str(&json).unwrap();
    assert_eq!(back.bars, 12);
    assert_eq!(Settings::default().bars, 8);
}

#[test]
fn continue_vary_and_harmonize_keep_the_music_they_are_given() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny::model_folder(&model);
    let file = tmp.path().join("tune.mid");
    std::fs::write(&file, midi_file(&tune(), 90.0, 0)).unwrap();
    let mut h = loaded_opening(&model, &file, |s| {
        s.steps = 2;
        s.continue_bars = 4;
        s.vary_strength = 0.0;
    });
    h.get_by_label("Open MIDI…").click();
    step_until(&mut h, "the file opened", |a| a.history.len() == 1);

    click_for_take(&mut h, "Continue");
    let take = &app(&h).history[1];
    assert!(
        matches!(
            take.origin,
            Origin::Continued {
                from: 1,
                bars: 4,
                ..
            }
        ),
        "{:?}",
        take.origin
    );
    assert_eq!((take.steps(), take.bars()), (320, 20), "four bars more");
    assert_eq!(take.tempo_bpm, Some(90.0), "the file's tempo");
    let notes = played(&take.variations[0].notes());
    let first: Played = notes.iter().copied().filter(|n| n.1 < 256).collect();
    assert_eq!(first, tune(), "the file's notes and velocities, exactly");
    assert!(notes.iter().all(|n| n.2 <= 320));

    h.state_mut().as_mut().unwrap().select(0, 0);
    click_for_take(&mut h, "Vary");
    let take = &app(&h).history[2];
    assert!(matches!(take.origin, Origin::Varied { from: 1, .. }));
    assert_eq!(take.steps(), 256);
    assert_eq!(
        played(&take.variations[0].notes()),
        tune(),
        "strength 0 is the take itself"
    );

    h.state_mut().as_mut().unwrap().select(0, 0);
    click_for_take(&mut h, "Harmonize");
    let take = &app(&h).history[3];
    assert!(matches!(take.origin, Origin::Harmonized { from: 1, .. }));
    assert_eq!(take.steps(), 256);
    let tune_notes: Vec<diffroll::roll::Note> = tune()
        .into_iter()
        .map(|(p, s, e, v)| diffroll::roll::Note::new(p, s, e, v))
        .collect();
    let melody = played(&diffroll::roll::Score::new(tune_notes, 256).top_line());
    assert!(!melody.is_empty());
    let notes = played(&take.variations[0].notes());
    let missing: Vec<_> = melody.iter().filter(|m| !notes.contains(m)).collect();
    assert!(
        missing.is_empty(),
        "the top line exactly: {missing:?} missing"
    );
}

#[test]
fn a_blend_between_two_takes_writes_at_least_three_pieces() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny::model_folder(&model);
    let mut h = harness(&model, &tmp.path().join("unused.mid"), 2);
    step_until(&mut h, "model loaded", |a| {
        matches!(a.model, ModelStatus::Ready { .. })
    });
    assert!(is_disabled(&h, "Blend"), "nothing to blend yet");
    click_for_take(&mut h, "Generate");
    click_for_take(&mut h, "Generate");
    assert!(is_disabled(&h, "Blend"), "no take chosen to blend with");
    h.state_mut().as_mut().unwrap().blend_with = Some(1);
    h.run_steps(2);
    click_for_take(&mut h, "Blend");
    let a = app(&h);
    let take = &a.history[2];
    assert!(
        matches!(take.origin, Origin::Blended { a: 2, b: 1, .. }),
        "{:?}",
        take.origin
    );
    assert_eq!(take.variations.len(), 3, "one variation asked for: three");
    assert!(take.variations.iter().all(|v| v.roll.steps() == 128));
    assert!(
        a.messages.iter().any(|m| m.text.contains("at least 3")),
        "says why there are three"
    );
}

#[test]
fn an_edit_that_cannot_work_says_why_and_adds_no_take() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny::model_folder(&model);
    let mut h = harness(&model, &tmp.path().join("unused.mid"), 2);
    step_until(&mut h, "model loaded", |a| {
        matches!(a.model, ModelStatus::Ready { .. })
    });
    click_for_take(&mut h, "Generate");
    {
        let a = h.state_mut().as_mut().unwrap();
        let like = a.history[0].variations[0].roll.clone();
        a.history[0].variations[0] = diffroll::app::Variation::of_notes(Vec::new(), 128, &like);
    }
    let before = app(&h).messages.len();
    h.get_by_label("Continue").click();
    step_until(&mut h, "the edit refused", |a| {
        !a.is_generating() && a.messages.len() > before
    });
    let a = app(&h);
    let last = a.messages.last().unwrap();
    assert!(
        last.error && last.text.contains("no notes"),
        "{}",
        last.text
    );
    assert!(
        last.text.starts_with("Continue") && last.text.contains("choose"),
        "says which button and what to do: {}",
        last.text
    );
    assert_eq!(a.history.len(), 1, "no take added");
    assert_eq!(a.selected, Some((0, 0)));
    assert!(a.can_generate(), "the app stays usable");
}

#[test]
fn record_without_a_midi_system_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny::model_folder(&model);
    let mut h = harness(&model, &tmp.path().join("unused.mid"), 2);
    h.get_by_label("Record").click();
    step_until(&mut h, "Record answered", |a| {
        !a.connecting_input && (a.recording.is_some() || a.messages.iter().any(|m| m.error))
    });
    if app(&h).recording.is_some() {
        // A MIDI system after all: nothing was played, and Stop says so.
        h.get_by_label("Stop recording").click();
        h.run_steps(2);
    }
    let a = app(&h);
    let last = a.messages.iter().rev().find(|m| m.error).unwrap();
    assert!(
        last.text.contains("MIDI") || last.text.contains("nothing was played"),
        "{}",
        last.text
    );
    assert!(a.recording.is_none());
    assert!(a.history.is_empty(), "no take");
}
