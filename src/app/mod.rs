//! The desktop app (eframe): the piano roll in the centre, Generate with every denoising step
//! shown live (the model's image sharpening into notes), pieces of any length, MIDI files
//! opened or played in on a MIDI keyboard as takes, Continue, Vary, Blend and Harmonize on any
//! take, play and export, a history of earlier takes. State lives in plain structs and the
//! UI is drawn from it each frame. Nothing slow runs on the UI thread: the model has its own
//! thread ([`worker`]), so does playback ([`playback`]), and file dialogs, file reads and
//! exports run on short-lived threads that report back through a channel.

mod finetune_panel;
mod open;
mod panels;
pub mod playback;
pub mod roll_view;
pub mod take;
pub mod worker;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::audio::InstrumentSpec;
use crate::audio::MidiRecorder;
use crate::device::DeviceRequest;
use crate::fsutil::atomic_write;
use crate::model::catalog::{self, ModelEntry};
use crate::model::{Fog, GenerateRequest, Guidance, KeyChoice, Refine, Restart, SamplerKind};
use crate::roll::{
    DEFAULT_TEMPO_BPM, Note, Roll, STEPS_PER_BAR, STEPS_PER_BEAT, Score, Style, WINDOW_BARS,
    WINDOW_STEPS,
};
use playback::{Output, Playback, Status};
use roll_view::{RollImage, RollView};
pub use take::{EditJob, EditKind, Job, Origin, Piece, ReworkPlan, Take, Variation};
use worker::{Command, Event, Worker};

/// Restart settings for a model that recommends none: the slider starts at 0 rounds and, when
/// moved, restarts from step 100 with 6 steps a round (fewer steps a round thin the music out:
/// see the sampler's tests).
pub const NO_RESTART: Restart = Restart {
    t: 100,
    steps: 6,
    rounds: 0,
};

/// Key of the settings in eframe's storage.
const SETTINGS_KEY: &str = "diffroll.settings";

/// What the user chose; persisted between runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// Model folder; `None` means the shipped base model.
    pub model: Option<PathBuf>,
    pub device: DeviceRequest,
    /// `None`: each take's style is drawn as in the training data.
    pub style: Option<Style>,
    pub sampler: SamplerKind,
    pub steps: usize,
    /// Guidance for the styles `style_guidance` does not name.
    pub guidance: f32,
    /// A style's own guidance (the model's recommendation, or what the user set while that
    /// style was chosen).
    pub style_guidance: BTreeMap<Style, f32>,
    /// Restart passes after the main one (rounds 0: none).
    pub restart: Restart,
    /// Validity refinement of each take's latent (the model's recommendation; `None`: off).
    /// On by default, so settings saved before it existed turn it on too.
    pub refine: Option<Refine>,
    /// Key of new takes: typical for the style, as the model drew it, or one the user chose.
    pub key: KeyChoice,
    pub seed: u64,
    /// Keep the seed between takes (otherwise each Generate draws a new one).
    pub lock_seed: bool,
    /// `None`: the style's usual tempo.
    pub tempo: Option<f32>,
    pub variations: usize,
    pub output: Output,
    pub looping: bool,
    /// The model whose recommended sampler settings were last applied: a newly chosen model
    /// brings its own, while the user's changes survive restarts with the same one.
    pub defaults_from: Option<PathBuf>,
    /// While the model works, draw its image (how likely a note sounds and starts in each
    /// cell) rather than the notes it would settle on at that step.
    pub show_fog: bool,
    /// Length of a Generate, in bars (1 to [`crate::model::MAX_BARS`]).
    pub bars: usize,
    /// Bars Continue adds after the take on screen.
    pub continue_bars: usize,
    /// How far Vary moves from the take: 0 keeps it, 1 writes new music.
    pub vary_strength: f32,
    /// The MIDI input Record listens to; `None`: a virtual port of diffroll's own that a
    /// keyboard or a DAW connects to.
    pub input_port: Option<String>,
}

impl Settings {
    pub fn guidance(&self) -> Guidance {
        Guidance {
            scale: self.guidance,
            per_style: self.style_guidance.clone(),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model: None,
            device: DeviceRequest::Auto,
            style: None,
            sampler: SamplerKind::DpmSolverPP,
            steps: 25,
            guidance: 1.0,
            style_guidance: BTreeMap::new(),
            restart: NO_RESTART,
            refine: Some(Refine::RECOMMENDED),
            key: KeyChoice::Typical,
            seed: 1,
            lock_seed: false,
            tempo: None,
            variations: 1,
            output: Output::Builtin,
            looping: false,
            defaults_from: None,
            show_fog: true,
            bars: WINDOW_BARS,
            continue_bars: 4,
            vary_strength: 0.3,
            input_port: None,
        }
    }
}

/// Opens file dialogs. The app calls it off the UI thread; tests substitute their own.
pub trait Dialogs: Send + Sync {
    /// A path to save to, or `None` if the user cancelled.
    fn save_file(&self, title: &str, file_name: &str, extension: &str) -> Option<PathBuf>;
    /// An existing file to open, one of `extensions` (without dots), or `None` if the user
    /// cancelled.
    fn open_file(&self, title: &str, extensions: &[&str]) -> Option<PathBuf>;
}

/// The platform's native dialogs (rfd).
pub struct NativeDialogs;

impl Dialogs for NativeDialogs {
    fn save_file(&self, title: &str, file_name: &str, extension: &str) -> Option<PathBuf> {
        rfd::FileDialog::new()
            .set_title(title)
            .set_file_name(file_name)
            .add_filter(extension.to_uppercase(), &[extension])
            .save_file()
    }

    fn open_file(&self, title: &str, extensions: &[&str]) -> Option<PathBuf> {
        rfd::FileDialog::new()
            .set_title(title)
            .add_filter("MIDI", extensions)
            .pick_file()
    }
}

/// How the app starts.
pub struct AppOptions {
    /// Use this model (folder or saved name) instead of the remembered one.
    pub model: Option<PathBuf>,
    pub device: Option<DeviceRequest>,
    /// Generate once at start, print frame-time statistics when done, and quit.
    pub measure: bool,
    /// Generate once at start, save the window as this PNG when done, and quit.
    pub screenshot: Option<PathBuf>,
    pub dialogs: Arc<dyn Dialogs>,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            model: None,
            device: None,
            measure: false,
            screenshot: None,
            dialogs: Arc::new(NativeDialogs),
        }
    }
}

/// The model as the UI knows it.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelStatus {
    Loading(PathBuf),
    Ready {
        dir: PathBuf,
        name: String,
        device: String,
    },
    Missing(String),
}

/// A generation in progress.
pub struct Progress {
    pub step: usize,
    pub total: usize,
    pub started: Instant,
    pub cancelling: bool,
    /// The take's latent is refined after the last step (a few decoder passes, no previews).
    pub refining: bool,
    /// The model window being written (from 0) and how many the piece needs.
    pub window: usize,
    pub windows: usize,
}

/// A line in the status bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub text: String,
    pub error: bool,
}

impl Message {
    fn info(text: impl Into<String>) -> Message {
        Message {
            text: text.into(),
            error: false,
        }
    }
    fn error(text: impl Into<String>) -> Message {
        Message {
            text: text.into(),
            error: true,
        }
    }
}

/// Results of short background jobs (exports, reading dropped or opened files).
pub enum Background {
    Message(Message),
    Intake(crate::train::finetune::Intake),
    /// A MIDI file to open as a take, as read (or why it could not be).
    Opened {
        path: PathBuf,
        song: Result<crate::midi::Song, String>,
    },
    /// A MIDI input connected for Record (or why it could not be).
    Recorder(Result<crate::audio::MidiRecorder, String>),
}

/// What the roll shows while a MIDI input records.
pub struct Recorder {
    recorder: crate::audio::MidiRecorder,
    /// Tempo whose sixteenths the notes snap to.
    pub tempo_bpm: f32,
    /// The notes on screen now.
    shown: Vec<Note>,
}

/// How far a blend's pieces between the two ends move from a plain mix of them.
pub const BLEND_STRENGTH: f32 = 0.5;
/// Fewest pieces a blend writes: the two ends and one between.
pub const MIN_BLEND: usize = 3;

/// Most takes the history keeps; the oldest leave it first.
pub const MAX_TAKES: usize = 200;
/// Most memory the history's rolls and notes may take (long opened pieces count for more).
pub const MAX_HISTORY_BYTES: usize = 64 << 20;

/// Frame work times (eframe's `cpu_usage`: the frame minus waiting for vsync) while a
/// generation runs.
#[derive(Default)]
struct FrameStats {
    during_generation: Vec<f32>,
    /// Seconds between the starts of consecutive frames (work plus waiting for the display).
    intervals: Vec<f32>,
    last_start: Option<Instant>,
}

impl FrameStats {
    fn report(&self) -> String {
        let mut ms: Vec<f32> = self.during_generation.iter().map(|s| s * 1000.0).collect();
        if ms.is_empty() {
            return "no frames measured".into();
        }
        ms.sort_by(f32::total_cmp);
        let pct = |v: &[f32], p: f32| v[((v.len() - 1) as f32 * p).round() as usize];
        let mut gaps: Vec<f32> = self.intervals.iter().map(|s| s * 1000.0).collect();
        gaps.sort_by(f32::total_cmp);
        let gaps = if gaps.is_empty() {
            vec![f32::NAN]
        } else {
            gaps
        };
        format!(
            "frames during generation: {}; frame time p50 {:.1} ms, p95 {:.1} ms, max {:.1} ms; \
             frame interval p50 {:.1} ms, p95 {:.1} ms",
            ms.len(),
            pct(&ms, 0.5),
            pct(&ms, 0.95),
            ms[ms.len() - 1],
            pct(&gaps, 0.5),
            pct(&gaps, 0.95),
        )
    }
}

pub struct DiffrollApp {
    pub settings: Settings,
    dialogs: Arc<dyn Dialogs>,
    worker: Worker,
    pub model: ModelStatus,
    models: Vec<ModelEntry>,
    pub progress: Option<Progress>,
    /// Denoising previews received during the current (or last) generation.
    pub previews_seen: usize,
    /// Steps the model finished after the last Cancel (at most one by design).
    pub last_cancel_overrun: Option<usize>,
    /// Earlier takes, oldest first (at most [`MAX_TAKES`]).
    pub history: Vec<Take>,
    /// Takes made or opened so far, the history's dropped ones included (numbers takes).
    takes_made: usize,
    /// Whether the user was told that old takes leave the history.
    told_history_full: bool,
    /// (take, variation) on screen when not generating.
    pub selected: Option<(usize, usize)>,
    /// What the model thread is working on for the UI.
    job: Option<Job>,
    /// The latest preview, its image and the step of the piece it starts at while a
    /// generation runs (redrawn when the fog toggle changes).
    live: Option<(Roll, Option<Fog>, u32)>,
    /// Number of the take Blend goes to from the take on screen.
    pub blend_with: Option<usize>,
    /// A MIDI input recording, shown live in the roll.
    pub recording: Option<Recorder>,
    /// A MIDI input being connected for Record (off the UI thread).
    pub connecting_input: bool,
    midi_inputs: Vec<String>,
    /// A single MIDI file dropped on the window, waiting for the user to choose between
    /// opening it and fine-tuning on it.
    pub drop_choice: Option<PathBuf>,
    image: Option<Arc<RollImage>>,
    image_version: u64,
    view: RollView,
    playback: Option<Playback>,
    /// Steps per second of what is playing, for the playhead.
    playback_rate: f64,
    pub messages: Vec<Message>,
    background: (Sender<Background>, Receiver<Background>),
    pub finetune: finetune_panel::FinetunePanel,
    /// A saved model being renamed: (old name, name being typed).
    renaming: Option<(String, String)>,
    /// First and last bar (from 1) that Regenerate bars writes anew: at most
    /// [`crate::roll::WINDOW_BARS`] of them at once.
    pub rework_bars: (usize, usize),
    /// A saved model whose Delete was clicked once.
    confirm_delete: Option<String>,
    soundfonts: Vec<PathBuf>,
    midi_ports: Vec<String>,
    measure: bool,
    screenshot: Option<PathBuf>,
    frames: FrameStats,
    ctx: egui::Context,
}

impl DiffrollApp {
    /// Builds the app from eframe's creation context: settings from storage, the shader
    /// pipeline on the renderer, the model thread, and the first model load.
    pub fn new(cc: &eframe::CreationContext<'_>, options: AppOptions) -> DiffrollApp {
        let mut settings: Settings = cc
            .storage
            .and_then(|s| eframe::get_value(s, SETTINGS_KEY))
            .unwrap_or_default();
        if let Some(model) = options.model {
            settings.model = Some(model);
        }
        if let Some(device) = options.device {
            settings.device = device;
        }
        roll_view::install(&cc.egui_ctx, cc.wgpu_render_state.as_ref());
        let ctx = cc.egui_ctx.clone();
        let mut app = DiffrollApp::with_settings(settings, options.dialogs, ctx);
        app.measure = options.measure;
        app.screenshot = options.screenshot;
        app
    }

    /// The app without eframe's creation context (tests build it this way, too).
    pub fn with_settings(
        settings: Settings,
        dialogs: Arc<dyn Dialogs>,
        ctx: egui::Context,
    ) -> DiffrollApp {
        let repaint = ctx.clone();
        let worker = Worker::spawn(move || repaint.request_repaint())
            .expect("the OS refused to start the model thread");
        let mut app = DiffrollApp {
            settings,
            dialogs,
            worker,
            model: ModelStatus::Missing(String::new()),
            models: catalog::list(),
            progress: None,
            previews_seen: 0,
            last_cancel_overrun: None,
            history: Vec::new(),
            takes_made: 0,
            told_history_full: false,
            selected: None,
            job: None,
            live: None,
            blend_with: None,
            recording: None,
            connecting_input: false,
            midi_inputs: Vec::new(),
            drop_choice: None,
            image: None,
            image_version: 0,
            view: RollView::default(),
            playback: None,
            playback_rate: 0.0,
            messages: Vec::new(),
            background: channel(),
            finetune: Default::default(),
            renaming: None,
            rework_bars: (5, 6),
            confirm_delete: None,
            soundfonts: crate::audio::find_soundfonts(),
            midi_ports: Vec::new(),
            measure: false,
            screenshot: None,
            frames: FrameStats::default(),
            ctx,
        };
        app.load_model();
        app
    }

    /// Asks the worker for the chosen model (or says why there is none).
    pub fn load_model(&mut self) {
        let dir = match &self.settings.model {
            Some(spec) => catalog::resolve(spec),
            None => catalog::shipped_base().ok_or(crate::model::ModelError::NoBaseModel),
        };
        match dir {
            Ok(dir) => {
                self.model = ModelStatus::Loading(dir.clone());
                self.worker.send(Command::Load {
                    dir,
                    device: self.settings.device,
                });
            }
            Err(e) => {
                self.model = ModelStatus::Missing(e.to_string());
                self.say(Message::error(e.to_string()));
            }
        }
    }

    fn say(&mut self, message: Message) {
        if message.error {
            tracing::warn!("{}", message.text);
        }
        self.messages.push(message);
        if self.messages.len() > 100 {
            self.messages.remove(0);
        }
    }

    /// Takes made or opened in this run, those the history has let go included.
    pub fn takes_made(&self) -> usize {
        self.takes_made
    }

    pub fn is_generating(&self) -> bool {
        self.progress.is_some()
    }

    pub fn can_generate(&self) -> bool {
        matches!(self.model, ModelStatus::Ready { .. })
            && !self.is_generating()
            && self.finetune.running.is_none()
            && self.recording.is_none()
    }

    /// Starts a take with the current settings.
    pub fn generate(&mut self) {
        if !self.can_generate() {
            return;
        }
        let request = self.request(self.settings.style);
        let bars = self.settings.bars.clamp(1, crate::model::MAX_BARS);
        if bars == WINDOW_BARS {
            self.start(request, Job::Generate, Command::Generate);
            return;
        }
        let steps = (bars * STEPS_PER_BAR) as u32;
        let job = EditJob::new(
            EditKind::Long { bars },
            steps,
            Vec::new(),
            crate::midi::bar_starts(&[], steps),
            None,
        );
        self.start(request, Job::Edit(job), |request| Command::GenerateBars {
            request,
            bars,
        });
    }

    /// The take on screen as the model takes it in: its number, the selected variation as a
    /// score at the tempo it plays at, its bars and its own tempo. `None` while the model
    /// works or with nothing on screen.
    fn source(&self) -> Option<(usize, Score, Vec<u32>, Option<f32>)> {
        if !self.can_generate() {
            return None;
        }
        let (t, v) = self.selected?;
        let take = self.history.get(t)?;
        let tempo = self.piece_to_use()?.tempo_bpm;
        let score = take.score(v, tempo)?;
        Some((take.number, score, take.bar_starts.clone(), take.tempo_bpm))
    }

    /// Continue: the take on screen with `continue_bars` bars more after it, its own notes
    /// (velocities included) as they are.
    pub fn continue_take(&mut self) {
        let Some((from, score, bar_starts, tempo)) = self.source() else {
            return;
        };
        let bars = self.settings.continue_bars.clamp(1, crate::model::MAX_BARS);
        let start = score.steps.div_ceil(STEPS_PER_BAR as u32) * STEPS_PER_BAR as u32;
        let steps = start + (bars * STEPS_PER_BAR) as u32;
        let job = EditJob::new(
            EditKind::Continue { from, bars },
            steps,
            score.notes.clone(),
            EditJob::bars_up_to(&bar_starts, start, steps),
            tempo,
        );
        let request = self.request(self.settings.style);
        self.start(request, Job::Edit(job), |request| Command::Continue {
            request,
            score,
            bars,
        });
    }

    /// Vary: variations of the take on screen, `vary_strength` away from it.
    pub fn vary(&mut self) {
        let Some((from, clip, bar_starts, tempo)) = self.source() else {
            return;
        };
        let strength = self.settings.vary_strength.clamp(0.0, 1.0);
        let job = EditJob::new(
            EditKind::Vary { from, strength },
            clip.steps,
            clip.notes.clone(),
            bar_starts,
            tempo,
        );
        let request = self.request(self.settings.style);
        self.start(request, Job::Edit(job), |request| Command::Vary {
            request,
            clip,
            strength,
        });
    }

    /// Harmonize: the top line of the take on screen kept as the melody, voices written
    /// around it.
    pub fn harmonize(&mut self) {
        let Some((from, score, bar_starts, tempo)) = self.source() else {
            return;
        };
        let melody = Score {
            notes: score.top_line(),
            ..score
        };
        let steps = melody.steps.div_ceil(STEPS_PER_BAR as u32) * STEPS_PER_BAR as u32;
        let job = EditJob::new(
            EditKind::Harmonize { from },
            steps,
            melody.notes.clone(),
            EditJob::bars_up_to(&bar_starts, melody.steps, steps),
            tempo,
        );
        let request = self.request(self.settings.style);
        self.start(request, Job::Edit(job), |request| Command::Harmonize {
            request,
            melody,
        });
    }

    /// Blend: pieces from the take on screen to the first variation of take number
    /// `blend_with`, as many as the variations setting asks for and at least [`MIN_BLEND`].
    pub fn blend(&mut self) {
        let Some((a, from, _, tempo)) = self.source() else {
            return;
        };
        let Some(other) = self.blend_with.and_then(|n| self.take_numbered(n)) else {
            self.say(Message::error(
                "choose the take to blend with in 'Blend with' (other takes of the history are \
                 listed there)",
            ));
            return;
        };
        let Some(to) = other.score(0, from.tempo_bpm) else {
            return;
        };
        let b = other.number;
        let asked = self.settings.variations;
        let count = asked.clamp(MIN_BLEND, 8);
        if count != asked {
            self.say(Message::info(format!(
                "a blend writes at least {MIN_BLEND} pieces (take {a}, one between, take {b}): \
                 writing {count}"
            )));
        }
        let steps = from.steps.max(to.steps).min(WINDOW_STEPS as u32);
        let job = EditJob::new(
            EditKind::Blend { a, b },
            steps,
            Vec::new(),
            crate::midi::bar_starts(&[], steps),
            tempo,
        );
        let request = self.request(self.settings.style);
        self.start(request, Job::Edit(job), |request| Command::Blend {
            request,
            a: from,
            b: to,
            count,
            strength: BLEND_STRENGTH,
        });
    }

    /// The take of number `number`, if the history still holds it.
    pub fn take_numbered(&self, number: usize) -> Option<&Take> {
        self.history.iter().find(|t| t.number == number)
    }

    /// Record: connects the chosen MIDI input (on a short thread: a MIDI system can take a
    /// while to answer) and records from it once it is there.
    pub fn record(&mut self) {
        if self.recording.is_some() || self.connecting_input {
            return;
        }
        self.connecting_input = true;
        let port = self.settings.input_port.clone();
        let tx = self.background.0.clone();
        let ctx = self.ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("diffroll-midi-in".into())
            .spawn(move || {
                let recorder = match port {
                    Some(port) => MidiRecorder::connect(&port),
                    None => MidiRecorder::open_virtual(crate::audio::VIRTUAL_INPUT_PORT_NAME),
                };
                let _ = tx.send(Background::Recorder(recorder.map_err(|e| e.to_string())));
                ctx.request_repaint();
            });
        if let Err(e) = spawned {
            self.connecting_input = false;
            self.say(Message::error(format!("MIDI input: {e}")));
        }
    }

    fn recorder_arrived(&mut self, recorder: Result<MidiRecorder, String>) {
        self.connecting_input = false;
        match recorder {
            Ok(recorder) => {
                recorder.restart();
                let tempo_bpm = self.tempo_for(self.settings.style);
                self.say(Message::info(format!(
                    "recording from {} at {tempo_bpm:.0} BPM: play, then press Stop recording",
                    recorder.name()
                )));
                self.recording = Some(Recorder {
                    recorder,
                    tempo_bpm,
                    shown: Vec::new(),
                });
                self.show_recording(true);
            }
            Err(e) => self.say(Message::error(format!("Record: {e}"))),
        }
    }

    /// Draws what has been played so far (when it changed, or `always`).
    fn show_recording(&mut self, always: bool) {
        let Some(rec) = &mut self.recording else {
            return;
        };
        let now = rec.recorder.snapshot(rec.tempo_bpm);
        if !always && now.notes == rec.shown {
            return;
        }
        let steps = (now.steps as usize).max(WINDOW_STEPS);
        let roll = Roll::from_notes(&now.notes, steps);
        rec.shown = now.notes;
        let image = RollImage::new(&roll, self.image_version + 1);
        self.show_image(image);
    }

    /// Stop recording: what was played becomes a take, on the sixteenth grid at the tempo it
    /// was recorded at, velocities kept.
    pub fn stop_recording(&mut self) {
        let Some(rec) = self.recording.take() else {
            return;
        };
        let port = rec.recorder.name().to_string();
        let played = rec.recorder.stop(rec.tempo_bpm);
        if played.notes.is_empty() {
            self.say(Message::error(format!(
                "nothing was played on {port}: press Record and play a few notes (is the \
                 keyboard connected to it?)"
            )));
            self.restore_selected();
            return;
        }
        let steps = played.steps.max(STEPS_PER_BAR as u32);
        let mut like = Roll::new(0);
        like.tempo_bpm = played.tempo_bpm;
        let notes = played.notes.len();
        let take = Take {
            number: 0,
            origin: Origin::Recorded {
                port,
                tempo_bpm: played.tempo_bpm,
            },
            variations: vec![Variation::of_notes(played.notes, steps as usize, &like)],
            bar_starts: crate::midi::bar_starts(&[], steps),
            tempo_bpm: Some(played.tempo_bpm),
            seconds: 0.0,
            thumbs: Vec::new(),
        };
        let bars = take.bars();
        let number = self.file_take(take);
        self.say(Message::info(format!(
            "take {number}: played in, {bars} bars, {notes} notes"
        )));
    }

    /// Lists the MIDI inputs connected now (for Record's input choice).
    pub fn find_midi_inputs(&mut self) {
        match crate::audio::list_input_ports() {
            Ok(ports) => {
                let n = ports.len();
                self.midi_inputs = ports;
                self.say(Message::info(format!("{n} MIDI input port(s)")));
            }
            Err(e) => self.say(Message::error(e.to_string())),
        }
    }

    /// New takes on bars `rework_bars` of the take on screen, in its style; the rest of it
    /// stays as it is. On a take longer than the model's window the model sees the eight
    /// bars around them, and the takes are the whole piece with those bars replaced.
    pub fn rework(&mut self) {
        if !self.can_generate() {
            return;
        }
        let Some((t, v)) = self.selected else {
            return;
        };
        let Some(take) = self.history.get(t) else {
            return;
        };
        let Some(variation) = take.variations.get(v) else {
            return;
        };
        let asked = self.rework_bars;
        let Some(plan) = ReworkPlan::new(&take.bar_starts, take.steps() as u32, asked) else {
            return;
        };
        let job = Job::Rework {
            plan: plan.clone(),
            from: take.number,
            notes: variation.notes(),
            piece: variation.clone(),
            bar_starts: take.bar_starts.clone(),
            tempo_bpm: take.tempo_bpm,
        };
        let window = plan.window(&variation.roll);
        let style = variation.roll.style.or(self.settings.style);
        let (lo, hi) = (asked.0.min(asked.1), asked.0.max(asked.1));
        if plan.bars != (lo, hi) {
            self.say(Message::info(format!(
                "bars {lo}-{hi} do not fit the model's window (at most {} bars, {} steps, \
                 inside the piece): regenerating bars {}-{}",
                crate::roll::WINDOW_BARS,
                crate::roll::WINDOW_STEPS,
                plan.bars.0,
                plan.bars.1
            )));
        }
        self.rework_bars = plan.bars;
        let request = self.request(style);
        let span = plan.span_in_window();
        self.start(request, job, |request| Command::Rework {
            request,
            roll: window,
            span,
        });
    }

    /// The request the settings make, in `style`, with a fresh seed unless it is locked.
    fn request(&mut self, style: Option<Style>) -> GenerateRequest {
        if !self.settings.lock_seed {
            self.settings.seed = fresh_seed(self.settings.seed);
        }
        GenerateRequest {
            count: self.settings.variations.clamp(1, 8),
            seed: self.settings.seed,
            steps: self.settings.steps.clamp(1, 1000),
            sampler: self.settings.sampler,
            style,
            guidance: self.settings.guidance(),
            tempo_bpm: self.tempo_for(style),
            restart: Some(self.settings.restart).filter(|r| r.rounds > 0),
            refine: self.settings.refine,
            key: self.settings.key,
        }
    }

    /// Sends the model thread `command` made from `request`; `job` says how its previews are
    /// shown and its takes filed.
    fn start(
        &mut self,
        request: GenerateRequest,
        job: Job,
        command: impl FnOnce(GenerateRequest) -> Command,
    ) {
        self.previews_seen = 0;
        self.job = Some(job);
        self.live = None;
        self.progress = Some(Progress {
            step: 0,
            total: request.steps,
            started: Instant::now(),
            cancelling: false,
            refining: request.refine.is_some(),
            window: 0,
            windows: 1,
        });
        self.worker.send(command(request));
    }

    /// Asks for a MIDI file (Open MIDI…, Ctrl+O) and opens it as a take, off the UI thread.
    pub fn open_midi(&mut self) {
        open::ask(self);
    }

    pub fn cancel(&mut self) {
        if let Some(p) = &mut self.progress {
            p.cancelling = true;
            self.worker.cancel();
        }
    }

    fn tempo_for(&self, style: Option<Style>) -> f32 {
        self.settings
            .tempo
            .unwrap_or_else(|| style.map_or(DEFAULT_TEMPO_BPM, Style::default_tempo))
    }

    /// The roll on screen once generation is over: the selected variation.
    pub fn selected_roll(&self) -> Option<&Roll> {
        self.selected_variation().map(|v| &v.roll)
    }

    /// The selected take and its variation.
    pub fn selected_take(&self) -> Option<(&Take, &Variation)> {
        let (take, variation) = self.selected?;
        let take = self.history.get(take)?;
        Some((take, take.variations.get(variation)?))
    }

    pub fn selected_variation(&self) -> Option<&Variation> {
        self.selected_take().map(|(_, v)| v)
    }

    /// The selected variation as Play and Export use it: its notes at the tempo the user set,
    /// else the piece's own, else its style's.
    pub fn piece_to_use(&self) -> Option<Piece> {
        let (take, variation) = self.selected_take()?;
        let tempo = self
            .settings
            .tempo
            .or(take.tempo_bpm)
            .unwrap_or_else(|| self.tempo_for(variation.roll.style));
        Some(Piece::new(variation, tempo))
    }

    pub fn select(&mut self, take: usize, variation: usize) {
        if self.selected == Some((take, variation)) {
            return;
        }
        self.selected = Some((take, variation));
        self.show_selected();
        if self.playback.is_some() {
            self.stop();
        }
    }

    /// Draws the selected variation, with its take's bars.
    fn show_selected(&mut self) {
        let Some((take, variation)) = self.selected_take() else {
            self.image = None;
            return;
        };
        let image =
            RollImage::new(&variation.roll, self.image_version + 1).with_bars(&take.bar_starts);
        self.show_image(image);
    }

    fn show_image(&mut self, image: RollImage) {
        self.image_version = image.version;
        self.image = Some(Arc::new(image));
    }

    /// Draws the latest preview as the running job places it, as the model's image when
    /// the fog is on.
    fn show_live(&mut self) {
        let (Some(job), Some((preview, fog, offset))) = (&self.job, &self.live) else {
            return;
        };
        let fog = fog.as_ref().filter(|_| self.settings.show_fog);
        let image = job.preview_image(preview, fog, *offset, self.image_version + 1);
        self.show_image(image);
    }

    /// The fog toggle changed: a generation in progress is redrawn at once.
    pub fn fog_toggled(&mut self) {
        if self.is_generating() {
            self.show_live();
        }
    }

    /// The model's image of the preview on screen now, while a generation runs.
    pub fn live_fog(&self) -> Option<&Fog> {
        self.live.as_ref().and_then(|(_, fog, _)| fog.as_ref())
    }

    pub fn is_playing(&self) -> bool {
        self.playback.as_ref().is_some_and(Playback::is_running)
    }

    pub fn play(&mut self) {
        let Some(piece) = self.piece_to_use() else {
            return;
        };
        self.playback = None;
        self.playback_rate = f64::from(piece.tempo_bpm) / 60.0 * STEPS_PER_BEAT as f64;
        let ctx = self.ctx.clone();
        self.playback = Some(Playback::start(
            piece.sequence(),
            self.settings.output.clone(),
            self.settings.looping,
            move || ctx.request_repaint(),
        ));
    }

    pub fn stop(&mut self) {
        // Dropping the playback stops it with every note released.
        self.playback = None;
    }

    fn toggle_play(&mut self) {
        if self.is_playing() {
            self.stop();
        } else {
            self.play();
        }
    }

    /// Asks where to save, then writes the selected variation as MIDI (`mid`) or audio
    /// (`wav`), on a background thread; the result arrives as a message.
    pub fn export(&mut self, extension: &'static str) {
        let Some(piece) = self.piece_to_use() else {
            return;
        };
        let (take, variation) = self.selected.unwrap_or((0, 0));
        let name = self.history.get(take).map_or_else(
            || format!("diffroll.{extension}"),
            |t| t.file_name(variation, extension),
        );
        let dialogs = self.dialogs.clone();
        let tx = self.background.0.clone();
        let soundfont = match &self.settings.output {
            Output::SoundFont(path) => Some(path.clone()),
            _ => None,
        };
        let ctx = self.ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("diffroll-export".into())
            .spawn(move || {
                let title = if extension == "wav" {
                    "Export audio"
                } else {
                    "Export MIDI"
                };
                let Some(path) = dialogs.save_file(title, &name, extension) else {
                    return;
                };
                let message = match write_export(&piece, &path, soundfont.as_deref()) {
                    Ok(()) => Message::info(format!("exported {}", path.display())),
                    Err(e) => Message::error(format!("{}: {e}", path.display())),
                };
                let _ = tx.send(Background::Message(message));
                ctx.request_repaint();
            });
        if let Err(e) = spawned {
            self.say(Message::error(format!("export: {e}")));
        }
    }

    /// Puts `take` into the history (with its thumbnails) under the next number, letting the
    /// oldest takes go past [`MAX_TAKES`] or [`MAX_HISTORY_BYTES`]; selects it unless a
    /// generation is on screen. Returns its number.
    fn file_take(&mut self, mut take: Take) -> usize {
        self.takes_made += 1;
        take.number = self.takes_made;
        take.thumbs = take
            .variations
            .iter()
            .enumerate()
            .map(|(v, var)| {
                panels::thumbnail_texture(
                    &self.ctx,
                    &var.roll,
                    &format!("take-{}-{v}", take.number),
                )
            })
            .collect();
        self.history.push(take);
        let mut bytes: usize = self.history.iter().map(Take::bytes).sum();
        let mut dropped = 0;
        while self.history.len() - dropped > 1
            && (self.history.len() - dropped > MAX_TAKES || bytes > MAX_HISTORY_BYTES)
        {
            bytes -= self.history[dropped].bytes();
            dropped += 1;
        }
        if dropped > 0 {
            // The textures go with their handles.
            self.history.drain(..dropped);
            self.selected = self
                .selected
                .and_then(|(t, v)| Some((t.checked_sub(dropped)?, v)));
            if !self.told_history_full {
                self.told_history_full = true;
                self.say(Message::info(format!(
                    "the history keeps the latest {} takes; older ones leave it (export a take \
                     to keep it)",
                    self.history.len()
                )));
            }
        }
        if !self.is_generating() {
            self.selected = None;
            self.select(self.history.len() - 1, 0);
        }
        self.takes_made
    }

    /// Applies what the worker, the playback thread and background jobs reported.
    fn drain_events(&mut self) {
        while let Some(event) = self.worker.poll() {
            self.apply(event);
        }
        while let Ok(done) = self.background.1.try_recv() {
            match done {
                Background::Message(message) => self.say(message),
                Background::Intake(intake) => {
                    self.finetune.reading = false;
                    self.finetune.intake = Some(Arc::new(intake));
                }
                Background::Opened { path, song } => open::arrived(self, path, song),
                Background::Recorder(recorder) => self.recorder_arrived(recorder),
            }
        }
        let statuses: Vec<Status> = self
            .playback
            .as_ref()
            .map(|p| std::iter::from_fn(|| p.poll()).collect())
            .unwrap_or_default();
        for status in statuses {
            match status {
                Status::Started(device) => self.say(Message::info(format!("playing on {device}"))),
                Status::Ended => {}
                Status::Failed(e) => self.say(Message::error(format!("playback: {e}"))),
            }
        }
    }

    fn apply(&mut self, event: Event) {
        tracing::debug!("worker event: {}", event.kind());
        match event {
            Event::Loaded {
                dir,
                name,
                device,
                defaults,
                ..
            } => {
                if self.settings.defaults_from.as_ref() != Some(&dir) {
                    self.settings.sampler = defaults.sampler;
                    self.settings.steps = defaults.steps;
                    self.settings.guidance = defaults.guidance.scale;
                    self.settings.style_guidance = defaults.guidance.per_style.clone();
                    self.settings.restart = defaults.restart.unwrap_or(NO_RESTART);
                    self.settings.refine = defaults.refine;
                    self.settings.style = defaults.style;
                    self.settings.defaults_from = Some(dir.clone());
                }
                self.say(Message::info(format!("model '{name}' loaded on {device}")));
                self.model = ModelStatus::Ready { dir, name, device };
                if (self.measure || self.screenshot.is_some()) && self.history.is_empty() {
                    self.generate();
                }
            }
            Event::LoadFailed { dir, message } => {
                if self.measure || self.screenshot.is_some() {
                    eprintln!("{message}");
                    self.ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                }
                self.say(Message::error(message.clone()));
                self.model = ModelStatus::Missing(format!("{}: {message}", dir.display()));
            }
            Event::Step {
                step,
                total,
                window,
                windows,
                offset,
                mut preview,
                mut fog,
            } => {
                self.previews_seen += 1;
                if let Some(p) = &mut self.progress {
                    p.step = step + 1;
                    (p.total, p.window, p.windows) = (total, window, windows);
                }
                if !preview.is_empty() {
                    let first = preview.swap_remove(0);
                    let fog = (!fog.is_empty()).then(|| fog.swap_remove(0));
                    if let Some(Job::Edit(edit)) = &mut self.job {
                        edit.step(window, offset, &first);
                        if step == 0 && !matches!(edit.kind, EditKind::Blend { .. }) {
                            // The window being written stays in view.
                            let end = offset as usize + first.steps();
                            self.view.follow(offset as f32..end as f32);
                        }
                    }
                    self.live = Some((first, fog, offset));
                    self.show_live();
                }
            }
            Event::Done {
                request,
                rolls,
                seconds,
            } => {
                let job = self.job.take().unwrap_or(Job::Generate);
                let seed = request.seed;
                let take = job.finish(request, rolls, seconds);
                self.finished(take, seed, seconds);
            }
            Event::Edited {
                request,
                scores,
                seconds,
            } => {
                let job = self.job.take().unwrap_or(Job::Generate);
                let seed = request.seed;
                let take = job.finish_scores(request, scores, seconds);
                self.finished(take, seed, seconds);
            }
            Event::Cancelled { steps_after_cancel } => {
                self.progress = None;
                (self.job, self.live) = (None, None);
                self.last_cancel_overrun = Some(steps_after_cancel);
                self.say(Message::info("generation cancelled"));
                self.restore_selected();
            }
            Event::Failed(e) => {
                self.progress = None;
                let edit = match self.job.take() {
                    Some(Job::Edit(edit)) => Some(edit.kind.name()),
                    _ => None,
                };
                self.live = None;
                let hint = if e.contains("no notes") {
                    "; choose a take with notes to work on"
                } else {
                    ""
                };
                self.say(Message::error(match edit {
                    Some(name) => format!("{name}: {e}{hint}"),
                    None => e,
                }));
                self.restore_selected();
            }
            Event::FinetuneProgress { step, total, loss } => {
                if let Some(run) = &mut self.finetune.running {
                    (run.step, run.total, run.loss) = (step, total, loss);
                }
            }
            Event::FinetuneDone {
                dir,
                name,
                style,
                seconds,
            } => {
                self.finetune = Default::default();
                self.say(Message::info(format!(
                    "fine-tuned '{name}' in {seconds:.0} s (learned as style '{style}'); now in use"
                )));
                self.models = catalog::list();
                self.settings.model = Some(dir);
                self.load_model();
            }
            Event::FinetuneStopped(why) => {
                self.finetune.running = None;
                self.say(Message::error(why));
            }
        }
    }

    /// Files a finished take and says so (then takes the screenshot or reports the frame
    /// times a measuring run waits for).
    fn finished(&mut self, mut take: Take, seed: u64, seconds: f64) {
        self.progress = None;
        self.live = None;
        if take.tempo_bpm.is_none() {
            for v in &mut take.variations {
                v.roll.tempo_bpm = self.tempo_for(v.roll.style);
            }
        }
        let count = take.variations.len();
        let bars = take.bars();
        let number = self.file_take(take);
        self.say(Message::info(format!(
            "take {number}: {count} variation(s) of {bars} bars in {seconds:.1} s (seed {seed})"
        )));
        if self.measure {
            println!("{}", self.frames.report());
        }
        if let Some(path) = self.screenshot.take() {
            let ctx = self.ctx.clone();
            self.ctx.request_screenshot(move |image| {
                match save_png(&image, &path) {
                    Ok(()) => eprintln!("screenshot: {}", path.display()),
                    Err(e) => eprintln!("screenshot: {}: {e}", path.display()),
                }
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            });
        } else if self.measure {
            self.ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
    }

    /// Puts the selected take back on screen after a cancelled or failed generation.
    fn restore_selected(&mut self) {
        self.show_selected();
    }

    fn shortcuts(&mut self, ctx: &egui::Context) {
        use egui::{Key, KeyboardShortcut, Modifiers};
        let generate = KeyboardShortcut::new(Modifiers::COMMAND, Key::G);
        let export = KeyboardShortcut::new(Modifiers::COMMAND, Key::E);
        let open = KeyboardShortcut::new(Modifiers::COMMAND, Key::O);
        // Space belongs to a text field when one has focus. (Asked before `input_mut`, which
        // holds the context's lock.) Escape closes windows unless it cancels a generation.
        let typing = ctx.egui_wants_keyboard_input();
        let generating = self.is_generating();
        let (g, e, o, esc, space) = ctx.input_mut(|i| {
            (
                i.consume_shortcut(&generate),
                i.consume_shortcut(&export),
                i.consume_shortcut(&open),
                generating && i.consume_key(Modifiers::NONE, Key::Escape),
                !typing && i.consume_key(Modifiers::NONE, Key::Space),
            )
        });
        if g {
            self.generate();
        }
        if o {
            self.open_midi();
        }
        if e && self.selected_roll().is_some() {
            self.export("mid");
        }
        if esc {
            self.cancel();
        }
        if space && self.selected_roll().is_some() && !self.is_generating() {
            self.toggle_play();
        }
    }
}

impl DiffrollApp {
    /// Draws the whole window and handles input: everything `eframe::App::ui` does except
    /// reading the frame timer (test harnesses call this directly).
    pub fn show(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        self.drain_events();
        self.shortcuts(&ctx);
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        if !dropped.is_empty() {
            open::dropped(self, dropped);
        }
        panels::top_bar(self, ui);
        panels::bottom(self, ui);
        panels::controls(self, ui);
        egui::CentralPanel::default().show(ui, |ui| {
            let playhead = self
                .playback
                .as_ref()
                .filter(|p| p.is_running())
                .map(|p| (p.position() * self.playback_rate) as f32);
            self.view.show(ui, self.image.as_ref(), playhead);
            if ctx.input(|i| !i.raw.hovered_files.is_empty()) {
                ui.put(
                    ui.max_rect(),
                    egui::Label::new(
                        egui::RichText::new(
                            "Drop a MIDI file to open it or fine-tune on it; several files or \
                             a folder to fine-tune on them",
                        )
                        .heading(),
                    ),
                );
            }
        });
        finetune_panel::show(self, &ctx);
        open::show_choice(self, &ctx);
        if self.is_playing() || (self.measure && self.is_generating()) {
            ctx.request_repaint();
        }
        if self.recording.is_some() {
            // The notes played arrive on midir's thread, which does not wake the UI.
            self.show_recording(false);
            ctx.request_repaint_after(std::time::Duration::from_millis(30));
        }
    }

    /// The picture in the piano roll now: a denoising preview while generating, else the
    /// selected take.
    pub fn on_screen(&self) -> Option<&RollImage> {
        self.image.as_deref()
    }
}

impl eframe::App for DiffrollApp {
    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        let now = Instant::now();
        if self.measure && self.is_generating() {
            if let Some(cpu) = frame.info().cpu_usage {
                self.frames.during_generation.push(cpu);
            }
            if let Some(last) = self.frames.last_start {
                self.frames
                    .intervals
                    .push(now.duration_since(last).as_secs_f32());
            }
            self.frames.last_start = Some(now);
        } else {
            self.frames.last_start = None;
        }
        self.show(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, SETTINGS_KEY, &self.settings);
    }
}

/// A seed unlike `previous`, from the clock.
fn fresh_seed(previous: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let seed = nanos % 1_000_000;
    if seed == previous { seed + 1 } else { seed }
}

/// Writes `piece` to `path` as MIDI or (by extension) WAV, atomically.
pub fn write_export(piece: &Piece, path: &Path, soundfont: Option<&Path>) -> anyhow::Result<()> {
    let is_wav = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("wav"));
    let bytes = if is_wav {
        let instrument = match soundfont {
            Some(sf) => InstrumentSpec::SoundFont(crate::audio::load_soundfont(sf)?),
            None => InstrumentSpec::Builtin,
        };
        crate::audio::render_wav(&piece.sequence(), &instrument)?
    } else {
        let name = path
            .file_stem()
            .map_or_else(|| "diffroll".into(), |s| s.to_string_lossy().into_owned());
        piece.midi(&name)
    };
    atomic_write(path, &bytes)?;
    Ok(())
}

/// Writes a window screenshot as an RGBA PNG, atomically.
fn save_png(image: &egui::ColorImage, path: &Path) -> anyhow::Result<()> {
    let [w, h] = image.size;
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, w as u32, h as u32);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    let bytes: Vec<u8> = image.pixels.iter().flat_map(|c| c.to_array()).collect();
    writer.write_image_data(&bytes)?;
    writer.finish()?;
    atomic_write(path, &out)?;
    Ok(())
}

/// Opens the app window (wgpu renderer) and runs until it closes.
pub fn run(options: AppOptions) -> anyhow::Result<()> {
    worker::lower_compute_priority();
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("diffroll")
            .with_inner_size([1200.0, 760.0])
            .with_min_inner_size([640.0, 400.0]),
        renderer: eframe::Renderer::Wgpu,
        ..Default::default()
    };
    eframe::run_native(
        "diffroll",
        native,
        Box::new(|cc| Ok(Box::new(DiffrollApp::new(cc, options)))),
    )
    .map_err(|e| anyhow::anyhow!("could not open the window: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_saved_before_refinement_existed_turn_it_on() {
        let mut old = serde_json::to_value(Settings {
            steps: 40,
            ..Settings::default()
        })
        .expect("settings serialize");
        old.as_object_mut()
            .expect("an object")
            .remove("refine")
            .expect("the field is saved");
        let loaded: Settings = serde_json::from_value(old).expect("old settings load");
        assert_eq!(loaded.steps, 40, "the user's own choices stay");
        assert_eq!(loaded.refine, Some(Refine::RECOMMENDED));
        // Turned off, it stays off.
        let off = Settings {
            refine: None,
            ..Settings::default()
        };
        let json = serde_json::to_string(&off).expect("settings serialize");
        let back: Settings = serde_json::from_str(&json).expect("settings load");
        assert_eq!(back.refine, None);
    }
}
