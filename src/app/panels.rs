//! The panels around the piano roll, each a function of the app's state: the transport bar on
//! top, generation and sound controls on the left, the history strip and status line below.

use egui::{Color32, RichText, Sense, Ui, Vec2};

use super::playback::Output;
use super::{DiffrollApp, ModelStatus};
use crate::model::{KeyChoice, Refine, SamplerKind};
use crate::roll::{PITCHES, Roll, Style};

pub fn top_bar(app: &mut DiffrollApp, ui: &mut Ui) {
    egui::Panel::top("transport").show(ui, |ui| {
        ui.horizontal(|ui| {
            if app.is_generating() {
                let cancelling = app.progress.as_ref().is_some_and(|p| p.cancelling);
                if ui
                    .add_enabled(!cancelling, egui::Button::new("Cancel"))
                    .on_hover_text("Esc")
                    .clicked()
                {
                    app.cancel();
                }
            } else if ui
                .add_enabled(app.can_generate(), egui::Button::new("Generate"))
                .on_hover_text("Ctrl+G")
                .clicked()
            {
                app.generate();
            }
            let bars_label = ui.label("Bars");
            ui.add_enabled(
                !app.is_generating(),
                egui::DragValue::new(&mut app.settings.bars).range(1..=crate::model::MAX_BARS),
            )
            .labelled_by(bars_label.id)
            .on_hover_text(format!(
                "Length of a Generate: 1 to {} bars, written {} bars at a time",
                crate::model::MAX_BARS,
                crate::roll::WINDOW_BARS
            ));
            if ui
                .button("Open MIDI…")
                .on_hover_text("Open a MIDI file as a take (Ctrl+O)")
                .clicked()
            {
                app.open_midi();
            }
            if let Some(p) = &app.progress {
                let windows = p.windows.max(1);
                let fraction =
                    (p.window as f32 + p.step as f32 / p.total.max(1) as f32) / windows as f32;
                let secs = p.started.elapsed().as_secs_f32();
                let window = if windows > 1 {
                    format!("window {} of {windows}  ", p.window + 1)
                } else {
                    String::new()
                };
                let text = if p.refining && p.step >= p.total {
                    format!("{window}refining notes  {secs:.1} s")
                } else {
                    format!("{window}step {}/{}  {secs:.1} s", p.step, p.total)
                };
                ui.add(
                    egui::ProgressBar::new(fraction)
                        .desired_width(220.0)
                        .text(text),
                );
            }
            if ui
                .checkbox(&mut app.settings.show_fog, "Fog")
                .on_hover_text(
                    "While the model works, show its image: how likely a note sounds \
                     (brightness) and starts (a pale head) in each cell, sharpening into notes; \
                     off: the notes it would settle on at each step",
                )
                .changed()
            {
                app.fog_toggled();
            }
            ui.separator();
            let can_rework = app.can_generate() && app.selected_roll().is_some();
            let bar_count = app
                .selected_take()
                .map_or(crate::roll::WINDOW_BARS, |(t, _)| t.bars().max(1));
            ui.add_enabled_ui(can_rework, |ui| {
                let most = crate::roll::WINDOW_BARS;
                if ui
                    .button("Regenerate bars")
                    .on_hover_text(format!(
                        "New takes on these bars of the take on screen; the rest stays. At \
                         most {most} bars at once: the model sees the {most} bars around them"
                    ))
                    .clicked()
                {
                    app.rework();
                }
                let bars = 1..=bar_count;
                let from = ui.label("from");
                ui.add(egui::DragValue::new(&mut app.rework_bars.0).range(bars.clone()))
                    .labelled_by(from.id);
                let to = ui.label("to");
                ui.add(egui::DragValue::new(&mut app.rework_bars.1).range(bars))
                    .labelled_by(to.id);
                if bar_count > most {
                    ui.label(RichText::new(format!("of {bar_count}, up to {most} at once")).weak());
                }
            });
            ui.separator();
            let has_roll = app.selected_roll().is_some() && !app.is_generating();
            let label = if app.is_playing() { "Stop" } else { "Play" };
            if ui
                .add_enabled(has_roll, egui::Button::new(label))
                .on_hover_text("Space")
                .clicked()
            {
                if app.is_playing() {
                    app.stop();
                } else {
                    app.play();
                }
            }
            ui.checkbox(&mut app.settings.looping, "Loop");
            ui.separator();
            if ui
                .add_enabled(has_roll, egui::Button::new("Export .mid"))
                .on_hover_text("Ctrl+E")
                .clicked()
            {
                app.export("mid");
            }
            if ui
                .add_enabled(has_roll, egui::Button::new("Export .wav"))
                .clicked()
            {
                app.export("wav");
            }
        });
        ui.horizontal(|ui| edit_row(app, ui));
    });
}

/// Continue, Vary, Harmonize and Blend on the take on screen.
fn edit_row(app: &mut DiffrollApp, ui: &mut Ui) {
    let on_screen = app.selected_take().map(|(t, _)| t.number);
    let can_edit = app.can_generate() && on_screen.is_some();
    let s = &mut app.settings;
    let mut clicked: Option<fn(&mut DiffrollApp)> = None;
    ui.add_enabled_ui(can_edit, |ui| {
        if ui
            .button("Continue")
            .on_hover_text(
                "A new take: the take on screen as it is, and this many bars more after it",
            )
            .clicked()
        {
            clicked = Some(DiffrollApp::continue_take);
        }
        let more = ui.label("bars more");
        ui.add(egui::DragValue::new(&mut s.continue_bars).range(1..=crate::model::MAX_BARS))
            .labelled_by(more.id);
        ui.separator();
        if ui
            .button("Vary")
            .on_hover_text("Variations of the take on screen")
            .clicked()
        {
            clicked = Some(DiffrollApp::vary);
        }
        ui.add(
            egui::Slider::new(&mut s.vary_strength, 0.0..=1.0)
                .step_by(0.05)
                .text("Strength"),
        )
        .on_hover_text("0: the take itself; the higher, the further from it; 1: new music");
        ui.separator();
        if ui
            .button("Harmonize")
            .on_hover_text(
                "Keep the take's top line (its highest voice) as the melody and write the other                  voices around it",
            )
            .clicked()
        {
            clicked = Some(DiffrollApp::harmonize);
        }
        ui.separator();
        let others: Vec<usize> = app
            .history
            .iter()
            .map(|t| t.number)
            .filter(|&n| Some(n) != on_screen)
            .collect();
        if app.blend_with.is_some_and(|n| !others.contains(&n)) {
            app.blend_with = None;
        }
        let can_blend = app.blend_with.is_some();
        if ui
            .add_enabled(can_blend, egui::Button::new("Blend"))
            .on_hover_text(format!(
                "Pieces from the take on screen to the chosen take (their first {} bars), ends                  included: as many as Variations, at least {}",
                crate::roll::WINDOW_BARS,
                super::MIN_BLEND
            ))
            .clicked()
        {
            clicked = Some(DiffrollApp::blend);
        }
        let with = ui.label("with");
        egui::ComboBox::from_id_salt("blend_with")
            .selected_text(
                app.blend_with
                    .map_or_else(|| "a take…".to_string(), |n| format!("take {n}")),
            )
            .show_ui(ui, |ui| {
                for n in others.iter().rev() {
                    ui.selectable_value(&mut app.blend_with, Some(*n), format!("take {n}"));
                }
                if others.is_empty() {
                    ui.label("no other takes yet");
                }
            })
            .response
            .labelled_by(with.id);
    });
    if let Some(action) = clicked {
        action(app);
    }
}

pub fn controls(app: &mut DiffrollApp, ui: &mut Ui) {
    egui::Panel::left("controls")
        .resizable(false)
        .exact_size(230.0)
        .show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                model_section(app, ui);
                ui.separator();
                generation_section(app, ui);
                ui.separator();
                sound_section(app, ui);
                ui.separator();
                input_section(app, ui);
            });
        });
}

fn model_section(app: &mut DiffrollApp, ui: &mut Ui) {
    let heading = ui.heading("Model");
    let current = match &app.model {
        ModelStatus::Ready { name, .. } => name.clone(),
        ModelStatus::Loading(dir) => format!("loading {}…", dir.display()),
        ModelStatus::Missing(_) => "none".into(),
    };
    let mut chosen = None;
    egui::ComboBox::from_id_salt("model")
        .selected_text(current)
        .width(200.0)
        .show_ui(ui, |ui| {
            for entry in &app.models {
                let label = if entry.shipped {
                    format!("{} (shipped)", entry.name)
                } else {
                    entry.name.clone()
                };
                let is_current =
                    matches!(&app.model, ModelStatus::Ready { dir, .. } if *dir == entry.dir);
                if ui.selectable_label(is_current, label).clicked() {
                    chosen = Some(entry.clone());
                }
            }
            if app.models.is_empty() {
                ui.label("no models found");
            }
        })
        .response
        .labelled_by(heading.id);
    if let Some(entry) = chosen {
        app.settings.model = (!entry.shipped).then(|| entry.dir.clone());
        app.load_model();
    }
    manage_saved_model(app, ui);
    match &app.model {
        ModelStatus::Ready { device, .. } => {
            ui.label(RichText::new(device).small().weak());
        }
        ModelStatus::Missing(why) if !why.is_empty() => {
            ui.label(
                RichText::new(why)
                    .small()
                    .color(ui.visuals().error_fg_color),
            );
        }
        _ => {}
    }
}

/// Rename and Delete for the user's own models (the shipped one has neither).
fn manage_saved_model(app: &mut DiffrollApp, ui: &mut Ui) {
    let ModelStatus::Ready { dir, .. } = &app.model else {
        return;
    };
    let Some(entry) = app
        .models
        .iter()
        .find(|e| e.dir == *dir && !e.shipped)
        .cloned()
    else {
        return;
    };
    if let Some((old, new)) = &mut app.renaming {
        let mut done = None;
        ui.horizontal(|ui| {
            let label = ui.label("New name");
            let edit = ui
                .add(egui::TextEdit::singleline(new).desired_width(90.0))
                .labelled_by(label.id);
            let entered = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if ui.button("Save").clicked() || entered {
                done = Some(Some((old.clone(), new.clone())));
            }
            if ui.button("Cancel").clicked() {
                done = Some(None);
            }
        });
        match done {
            Some(Some((old, new))) => {
                app.renaming = None;
                match crate::model::catalog::rename(&old, &new) {
                    Ok(dir) => {
                        app.models = crate::model::catalog::list();
                        app.settings.model = Some(dir.clone());
                        app.settings.defaults_from = Some(dir.clone());
                        if let ModelStatus::Ready { dir: d, name, .. } = &mut app.model {
                            *d = dir;
                            *name = new.clone();
                        }
                        app.say(super::Message::info(format!("renamed '{old}' to '{new}'")));
                    }
                    Err(e) => app.say(super::Message::error(e.to_string())),
                }
            }
            Some(None) => app.renaming = None,
            None => {}
        }
        return;
    }
    ui.horizontal(|ui| {
        if ui.small_button("Rename").clicked() {
            app.renaming = Some((entry.name.clone(), entry.name.clone()));
        }
        let confirming = app.confirm_delete.as_deref() == Some(entry.name.as_str());
        let label = if confirming {
            "Really delete?"
        } else {
            "Delete"
        };
        if ui.small_button(label).clicked() {
            if confirming {
                app.confirm_delete = None;
                match crate::model::catalog::delete(&entry.name) {
                    Ok(()) => {
                        app.say(super::Message::info(format!("deleted '{}'", entry.name)));
                        app.models = crate::model::catalog::list();
                        app.settings.model = None;
                        app.load_model();
                    }
                    Err(e) => app.say(super::Message::error(e.to_string())),
                }
            } else {
                app.confirm_delete = Some(entry.name.clone());
            }
        }
    });
}

/// Guidance of the chosen style (each style keeps its own), or, with any style, of the styles
/// that have none of their own.
fn guidance_slider(ui: &mut Ui, s: &mut super::Settings) {
    let mut value = s
        .style
        .map_or(s.guidance, |style| s.guidance().for_style(style));
    let label = match s.style {
        Some(style) => format!("Guidance ({style})"),
        None => "Guidance".to_string(),
    };
    let own: Vec<String> = s
        .style_guidance
        .iter()
        .filter(|&(&style, _)| s.style.is_none_or(|chosen| chosen != style))
        .map(|(style, g)| format!("{style} {g}"))
        .collect();
    let hover = if own.is_empty() {
        "How strongly to follow the style (1 = off, and twice as fast)".to_string()
    } else {
        format!(
            "How strongly to follow the style (1 = off, and twice as fast). \
             Each style keeps its own: pick a style to see or change it; own settings now: {}",
            own.join(", ")
        )
    };
    let changed = ui
        .add(
            egui::Slider::new(&mut value, 1.0..=6.0)
                .step_by(0.25)
                .text(label),
        )
        .on_hover_text(hover)
        .changed();
    if changed {
        match s.style {
            Some(style) => {
                s.style_guidance.insert(style, value);
            }
            None => s.guidance = value,
        }
    }
}

fn generation_section(app: &mut DiffrollApp, ui: &mut Ui) {
    ui.heading("Settings");
    let s = &mut app.settings;
    ui.add_enabled_ui(app.progress.is_none(), |ui| {
        egui::ComboBox::from_label("Style")
            .selected_text(s.style.map_or("any", Style::name))
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut s.style, None, "any");
                for style in Style::ALL {
                    ui.selectable_value(&mut s.style, Some(style), style.name());
                }
            });
        let key_text = |k: KeyChoice| match k {
            KeyChoice::Typical => "typical for the style".to_string(),
            KeyChoice::AsDrawn => "as drawn".to_string(),
            KeyChoice::Root(_) => k.to_string(),
        };
        egui::ComboBox::from_label("Key")
            .selected_text(key_text(s.key))
            .show_ui(ui, |ui| {
                for k in [KeyChoice::Typical, KeyChoice::AsDrawn]
                    .into_iter()
                    .chain((0..12).map(KeyChoice::Root))
                {
                    ui.selectable_value(&mut s.key, k, key_text(k));
                }
            })
            .response
            .on_hover_text(
                "The model draws every key alike: 'typical' moves each take to a key and \
                 register the style's own music uses; or pick one (major / relative minor)",
            );
        ui.add(egui::Slider::new(&mut s.steps, 5..=100).text("Steps"));
        egui::ComboBox::from_label("Sampler")
            .selected_text(s.sampler.to_string())
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut s.sampler, SamplerKind::DpmSolverPP, "dpm");
                ui.selectable_value(&mut s.sampler, SamplerKind::Ddim { eta: 0.0 }, "ddim");
            });
        guidance_slider(ui, s);
        ui.add(egui::Slider::new(&mut s.restart.rounds, 0..=16).text("Clean-up"))
            .on_hover_text(
                "Restart rounds after the main pass: each re-noises the piece slightly and \
                 denoises it again, which mends broken and unstarted notes (more time)",
            );
        let mut refine = s.refine.is_some();
        if ui
            .checkbox(&mut refine, "Refine notes")
            .on_hover_text(
                "After sampling, nudge the piece until every note the decoder draws has its \
                 start, and in a style the model knows hardly rests (folk) no beat is silent (a few \
                 decoder passes; off: notes without a start are patched up)",
            )
            .changed()
        {
            s.refine = refine.then_some(Refine::RECOMMENDED);
        }
        ui.horizontal(|ui| {
            let label = ui.label("Seed");
            ui.add(egui::DragValue::new(&mut s.seed).range(0..=u32::MAX))
                .labelled_by(label.id);
            ui.checkbox(&mut s.lock_seed, "lock")
                .on_hover_text("Keep this seed for the next Generate");
        });
        ui.add(egui::Slider::new(&mut s.variations, 1..=8).text("Variations"));
    });
    ui.horizontal(|ui| {
        let mut manual = s.tempo.is_some();
        let tempo_label = ui.label("Tempo");
        if ui.checkbox(&mut manual, "set").changed() {
            s.tempo = manual.then_some(100.0);
        }
        match &mut s.tempo {
            Some(bpm) => {
                ui.add(egui::Slider::new(bpm, 30.0..=240.0).suffix(" BPM"))
                    .labelled_by(tempo_label.id);
            }
            None => {
                ui.label(RichText::new("style's own").weak());
            }
        }
    });
}

fn sound_section(app: &mut DiffrollApp, ui: &mut Ui) {
    let heading = ui.heading("Sound");
    let mut choices = vec![Output::Builtin];
    choices.extend(app.soundfonts.iter().cloned().map(Output::SoundFont));
    choices.extend(app.midi_ports.iter().cloned().map(Output::MidiPort));
    choices.push(Output::Virtual);
    let before = app.settings.output.clone();
    egui::ComboBox::from_id_salt("output")
        .selected_text(app.settings.output.label())
        .width(200.0)
        .show_ui(ui, |ui| {
            for choice in choices {
                let label = choice.label();
                ui.selectable_value(&mut app.settings.output, choice, label);
            }
        })
        .response
        .labelled_by(heading.id);
    if ui
        .small_button("Find MIDI ports")
        .on_hover_text("List the MIDI outputs connected now")
        .clicked()
    {
        match crate::audio::list_output_ports() {
            Ok(ports) => {
                let n = ports.len();
                app.midi_ports = ports;
                app.say(super::Message::info(format!("{n} MIDI output port(s)")));
            }
            Err(e) => app.say(super::Message::error(e.to_string())),
        }
    }
    if app.settings.output != before && app.is_playing() {
        app.play();
    }
}

/// Play it in: the MIDI input Record listens to, and Record / Stop recording.
fn input_section(app: &mut DiffrollApp, ui: &mut Ui) {
    let heading = ui.heading("Play it in");
    let virtual_label = format!("new port '{}'", crate::audio::VIRTUAL_INPUT_PORT_NAME);
    let mut choices: Vec<Option<String>> = vec![None];
    choices.extend(app.midi_inputs.iter().cloned().map(Some));
    if let Some(chosen) = &app.settings.input_port
        && !app.midi_inputs.contains(chosen)
    {
        choices.push(Some(chosen.clone()));
    }
    let label = |c: &Option<String>| c.clone().unwrap_or_else(|| virtual_label.clone());
    ui.add_enabled_ui(app.recording.is_none(), |ui| {
        egui::ComboBox::from_id_salt("input")
            .selected_text(label(&app.settings.input_port))
            .width(200.0)
            .show_ui(ui, |ui| {
                for choice in &choices {
                    ui.selectable_value(
                        &mut app.settings.input_port,
                        choice.clone(),
                        label(choice),
                    );
                }
            })
            .response
            .labelled_by(heading.id)
            .on_hover_text("The MIDI keyboard (or DAW track) Record listens to");
        if ui
            .small_button("Find MIDI inputs")
            .on_hover_text("List the MIDI inputs connected now")
            .clicked()
        {
            app.find_midi_inputs();
        }
    });
    ui.horizontal(|ui| {
        if app.recording.is_some() {
            if ui.button("Stop recording").clicked() {
                app.stop_recording();
            }
            ui.label(RichText::new("recording…").color(ui.visuals().error_fg_color));
        } else if ui
            .add_enabled(!app.connecting_input, egui::Button::new("Record"))
            .on_hover_text(
                "Play on the MIDI input; the notes snap to sixteenths at the tempo set above                  (velocities kept), and Stop recording makes them a take",
            )
            .clicked()
        {
            app.record();
        }
    });
}

pub fn bottom(app: &mut DiffrollApp, ui: &mut Ui) {
    egui::Panel::bottom("status").show(ui, |ui| {
        ui.horizontal(|ui| match app.messages.last() {
            Some(m) if m.error => {
                ui.colored_label(ui.visuals().error_fg_color, &m.text);
                if ui.small_button("x").clicked() {
                    app.messages.pop();
                }
            }
            Some(m) => {
                ui.label(&m.text);
            }
            None => {
                ui.label(
                    RichText::new(
                        "Ctrl+G generates; Ctrl+O opens a MIDI file; Space plays; Ctrl+E exports \
                         MIDI",
                    )
                    .weak(),
                );
            }
        });
    });
    egui::Panel::bottom("history")
        .exact_size(78.0)
        .show(ui, |ui| {
            if app.history.is_empty() {
                ui.centered_and_justified(|ui| {
                    ui.label(RichText::new("Earlier takes appear here").weak());
                });
                return;
            }
            let mut clicked = None;
            let mut blend_to = None;
            let on_screen = app.selected_take().map(|(t, _)| t.number);
            let can_blend = app.can_generate() && on_screen.is_some();
            egui::ScrollArea::horizontal()
                .stick_to_right(true)
                .show(ui, |ui| {
                    ui.horizontal(|ui| {
                        for (t, take) in app.history.iter().enumerate() {
                            for (v, thumb) in take.thumbs.iter().enumerate() {
                                let selected = app.selected == Some((t, v));
                                let style = take
                                    .variations
                                    .get(v)
                                    .and_then(|var| var.roll.style)
                                    .map_or("any", Style::name);
                                let response =
                                    thumbnail(ui, thumb, selected).on_hover_text(format!(
                                        "take {} / {}: {style}, {} bars, {}",
                                        take.number,
                                        v + 1,
                                        take.bars(),
                                        take.origin.describe()
                                    ));
                                if response.clicked() {
                                    clicked = Some((t, v));
                                }
                                if can_blend && on_screen != Some(take.number) {
                                    response.context_menu(|ui| {
                                        if ui.button("Blend with the take on screen").clicked() {
                                            blend_to = Some(take.number);
                                            ui.close();
                                        }
                                    });
                                }
                            }
                            ui.separator();
                        }
                    });
                });
            if let Some((t, v)) = clicked
                && !app.is_generating()
            {
                app.select(t, v);
            }
            if let Some(number) = blend_to {
                app.blend_with = Some(number);
                app.blend();
            }
        });
}

/// Most columns of a thumbnail: it is drawn about this wide, and a long piece's steps share
/// columns, so every thumbnail is small however long its take.
pub const THUMB_COLUMNS: usize = 128;

/// A small picture of `roll` for the history strip, made once per take.
pub fn thumbnail_texture(ctx: &egui::Context, roll: &Roll, name: &str) -> egui::TextureHandle {
    ctx.load_texture(name, thumbnail_image(roll), egui::TextureOptions::LINEAR)
}

/// The thumbnail's pixels: one row per pitch the roll uses, a column per step up to
/// [`THUMB_COLUMNS`] (lit where a note sounds in any of its steps).
pub fn thumbnail_image(roll: &Roll) -> egui::ColorImage {
    let (low, high) = roll.pitch_range().unwrap_or((60, 72));
    let (low, high) = (usize::from(low), usize::from(high).min(PITCHES - 1));
    let rows = high - low + 1;
    let steps = roll.steps();
    let columns = steps.clamp(1, THUMB_COLUMNS);
    let mut image = egui::ColorImage::filled([columns, rows], Color32::from_rgb(36, 38, 43));
    for pitch in low..=high {
        for step in 0..steps {
            if roll.sustain(pitch, step) {
                image[(step * columns / steps, high - pitch)] = Color32::from_rgb(97, 184, 250);
            }
        }
    }
    image
}

fn thumbnail(ui: &mut Ui, texture: &egui::TextureHandle, selected: bool) -> egui::Response {
    let (rect, response) = ui.allocate_exact_size(Vec2::new(112.0, 56.0), Sense::click());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 3.0, Color32::from_rgb(36, 38, 43));
    painter.image(
        texture.id(),
        rect.shrink(3.0),
        egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0)),
        Color32::WHITE,
    );
    let stroke = if selected {
        egui::Stroke::new(2.0, Color32::from_rgb(255, 148, 51))
    } else if response.hovered() {
        egui::Stroke::new(1.0, Color32::GRAY)
    } else {
        egui::Stroke::new(1.0, Color32::from_gray(60))
    };
    painter.rect_stroke(rect, 3.0, stroke, egui::StrokeKind::Inside);
    response
}
