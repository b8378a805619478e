//! The fine-tune panel: opened by dropping MIDI files or folders on the window. It lists each
//! file as accepted (with its windows) or rejected (with the reason), estimates the time,
//! takes a name, and shows the run's progress. Reading the files happens on a background
//! thread; training happens on the model thread.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use egui::{RichText, Ui};

use super::{DiffrollApp, Message, ModelStatus};
use crate::model::catalog;
use crate::train::finetune::{FinetuneConfig, Intake};

/// A run in progress.
pub struct Running {
    pub step: usize,
    pub total: usize,
    pub loss: f64,
    pub started: Instant,
    pub cancelling: bool,
}

#[derive(Default)]
pub struct FinetunePanel {
    pub open: bool,
    /// Reading the dropped files.
    pub reading: bool,
    pub intake: Option<Arc<Intake>>,
    pub name: String,
    pub steps: usize,
    pub running: Option<Running>,
}

impl FinetunePanel {
    /// Files arrived: read them in the background, nothing else changes until Start.
    pub fn dropped(app: &mut DiffrollApp, paths: Vec<PathBuf>) {
        if app.finetune.running.is_some() {
            app.say(Message::error(
                "a fine-tune is running; drop more files when it is done",
            ));
            return;
        }
        let panel = &mut app.finetune;
        panel.open = true;
        panel.reading = true;
        panel.intake = None;
        if panel.steps == 0 {
            panel.steps = FinetuneConfig::new().steps;
        }
        if panel.name.is_empty() {
            panel.name = suggested_name(&paths);
        }
        let tx = app.background.0.clone();
        let ctx = app.ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("diffroll-intake".into())
            .spawn(move || {
                let intake = crate::train::finetune::intake(&paths);
                let _ = tx.send(super::Background::Intake(intake));
                ctx.request_repaint();
            });
        if let Err(e) = spawned {
            app.finetune.reading = false;
            app.say(Message::error(format!("reading the files: {e}")));
        }
    }
}

/// A name from the dropped folder or first file, made valid and unused.
fn suggested_name(paths: &[PathBuf]) -> String {
    let stem = paths
        .first()
        .and_then(|p| p.file_stem())
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cleaned: String = stem
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .take(40)
        .collect();
    let base = if catalog::is_valid_name(cleaned.trim()) {
        cleaned.trim().to_string()
    } else {
        "my style".to_string()
    };
    let taken = |n: &str| catalog::user_models_dir().is_some_and(|root| root.join(n).exists());
    if !taken(&base) {
        return base;
    }
    (2..)
        .map(|i| format!("{base} {i}"))
        .find(|n| !taken(n))
        .unwrap_or(base)
}

/// Why Start is not possible now, if it is not.
fn blocker(app: &DiffrollApp) -> Option<String> {
    let panel = &app.finetune;
    let intake = panel.intake.as_ref()?;
    if intake.windows() == 0 {
        return Some("no file has 8 bars of notes: nothing to learn from".into());
    }
    if let Err(why) = catalog::new_model_dir(&panel.name) {
        return Some(why.to_string());
    }
    if !matches!(app.model, ModelStatus::Ready { .. }) {
        return Some("load a model to start from first".into());
    }
    if app.is_generating() {
        return Some("wait for the generation to finish".into());
    }
    None
}

pub fn show(app: &mut DiffrollApp, ctx: &egui::Context) {
    if !app.finetune.open {
        return;
    }
    let mut open = true;
    egui::Window::new("Fine-tune on your music")
        .open(&mut open)
        .default_width(460.0)
        .collapsible(false)
        .show(ctx, |ui| contents(app, ui));
    if !open && app.finetune.running.is_none() {
        app.finetune.open = false;
    }
}

fn contents(app: &mut DiffrollApp, ui: &mut Ui) {
    if app.finetune.reading {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label("reading the files…");
        });
        return;
    }
    let Some(intake) = app.finetune.intake.clone() else {
        ui.label("Drop MIDI files or a folder of them on the window.");
        return;
    };
    egui::ScrollArea::vertical()
        .max_height(220.0)
        .show(ui, |ui| {
            for piece in &intake.pieces {
                ui.label(format!(
                    "{}: {} windows",
                    file_name(&piece.path),
                    piece.windows.len()
                ));
            }
            for r in &intake.rejected {
                ui.colored_label(
                    ui.visuals().error_fg_color,
                    format!("{}: skipped, {}", file_name(&r.path), r.reason),
                );
            }
        });
    ui.separator();
    let config = FinetuneConfig::new().with_steps(app.finetune.steps.max(1));
    ui.label(format!(
        "{} of {} file(s) usable, {} eight-bar windows; about {}",
        intake.pieces.len(),
        intake.pieces.len() + intake.rejected.len(),
        intake.windows(),
        duration(config.estimated_secs())
    ));
    if let Some(run) = &app.finetune.running {
        let fraction = run.step as f32 / run.total.max(1) as f32;
        let elapsed = run.started.elapsed().as_secs_f64();
        let eta = if run.step > 0 {
            elapsed / run.step as f64 * (run.total - run.step) as f64
        } else {
            config.estimated_secs()
        };
        ui.add(egui::ProgressBar::new(fraction).text(format!(
            "step {}/{}  loss {:.4}  {} left",
            run.step,
            run.total,
            run.loss,
            duration(eta)
        )));
        let cancelling = run.cancelling;
        if ui
            .add_enabled(!cancelling, egui::Button::new("Cancel fine-tune"))
            .clicked()
        {
            if let Some(run) = &mut app.finetune.running {
                run.cancelling = true;
            }
            app.worker.cancel();
        }
        return;
    }
    let base_name = match &app.model {
        ModelStatus::Ready { name, .. } => name.clone(),
        _ => "—".into(),
    };
    ui.horizontal(|ui| {
        let label = ui.label("Name");
        ui.text_edit_singleline(&mut app.finetune.name)
            .labelled_by(label.id);
    });
    ui.add(egui::Slider::new(&mut app.finetune.steps, 50..=2000).text("Steps"));
    ui.label(RichText::new(format!("starts from '{base_name}', which stays as it is")).weak());
    let blocked = blocker(app);
    if let Some(why) = &blocked {
        ui.colored_label(ui.visuals().warn_fg_color, why);
    }
    ui.horizontal(|ui| {
        if ui
            .add_enabled(blocked.is_none(), egui::Button::new("Start fine-tune"))
            .clicked()
        {
            start(app, intake.clone());
        }
        if ui.button("Close").clicked() {
            app.finetune.open = false;
        }
    });
}

fn start(app: &mut DiffrollApp, intake: Arc<Intake>) {
    let ModelStatus::Ready { dir, .. } = &app.model else {
        return;
    };
    let (name, steps) = (app.finetune.name.clone(), app.finetune.steps.max(1));
    app.worker.send(super::worker::Command::Finetune {
        base: dir.clone(),
        intake,
        name,
        steps,
    });
    app.finetune.running = Some(Running {
        step: 0,
        total: steps,
        loss: f64::NAN,
        started: Instant::now(),
        cancelling: false,
    });
}

fn file_name(path: &std::path::Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into(),
    )
}

fn duration(secs: f64) -> String {
    if secs < 90.0 {
        format!("{secs:.0} s")
    } else {
        format!("{:.1} min", secs / 60.0)
    }
}
