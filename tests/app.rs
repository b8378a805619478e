//! The app through egui_kittest: a tiny model with random weights stands in for the real one
//! (the app must not care). Generate shows every denoising step and then a roll, enables Play
//! and Export; Export writes a MIDI file whose notes read back equal to the roll's, also by
//! an independent parser; Esc cancels within a step.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use burn::tensor::Device;
use diffroll::app::{Dialogs, DiffrollApp, ModelStatus, Settings};
use diffroll::device::DeviceRequest;
use diffroll::model::{AutoencoderConfig, ModelCard, UNetConfig, save_weights};
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};

/// A model folder with random weights: tiny, so a generation takes milliseconds.
fn tiny_model(dir: &Path) {
    let ae = AutoencoderConfig::new()
        .with_channels(vec![8, 8])
        .with_latent_channels(2);
    let unet = UNetConfig::new()
        .with_base_channels(8)
        .with_channel_mult(vec![1, 2])
        .with_attention(vec![false, true])
        .with_heads(2)
        .with_latent_channels(2);
    let device = Device::flex();
    let mut card = ModelCard::new("tiny", ae.clone());
    card.unet = Some(unet.clone());
    std::fs::create_dir_all(dir).unwrap();
    card.save(dir).unwrap();
    save_weights(
        &ae.init(&device),
        &dir.join(diffroll::model::AUTOENCODER_FILE),
    )
    .unwrap();
    save_weights(&unet.init(&device), &dir.join(diffroll::model::UNET_FILE)).unwrap();
}

/// Answers every save dialog with one path.
struct SaveTo(PathBuf);

impl Dialogs for SaveTo {
    fn save_file(&self, _title: &str, _name: &str, _extension: &str) -> Option<PathBuf> {
        Some(self.0.clone())
    }
}

fn harness(model: &Path, export: &Path, steps: usize) -> Harness<'static, Option<DiffrollApp>> {
    let settings = Settings {
        model: Some(model.to_path_buf()),
        device: DeviceRequest::Cpu,
        steps,
        // The model's recommended settings count as applied, so `steps` stays.
        defaults_from: Some(model.to_path_buf()),
        ..Settings::default()
    };
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

fn is_disabled(h: &Harness<'_, Option<DiffrollApp>>, label: &str) -> bool {
    h.get_by_label(label).accesskit_node().is_disabled()
}

#[test]
fn generate_shows_steps_then_a_roll_and_export_writes_the_same_notes() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny_model(&model);
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
fn escape_cancels_within_one_step_and_keeps_the_app_usable() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("tiny");
    tiny_model(&model);
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
    tiny_model(&model);
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
