//! The model thread: it owns the loaded [`Pipeline`] and the compute device, takes
//! [`Command`]s and answers with [`Event`]s. The UI never waits on it: it polls the event
//! channel each frame, and the worker asks for a repaint whenever it sends something.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;
use std::time::Instant;

use crate::device::{self, DeviceRequest};
use crate::model::{Defaults, EditStep, Fog, GenerateRequest, ModelError, OnEditStep, Pipeline};
use crate::roll::{Roll, Score};
use crate::train::finetune::{self, FinetuneConfig, FinetuneRun, Intake};
use crate::train::run::{Control, Progress};

/// What the UI asks of the model thread.
#[derive(Debug, Clone)]
pub enum Command {
    /// Load a model folder on a device (replacing the current model).
    Load {
        dir: PathBuf,
        device: DeviceRequest,
    },
    Generate(GenerateRequest),
    /// New takes on the steps `span` of `roll` (one 8-bar model window; the app cuts it from a
    /// longer take and puts the takes back), the rest of it kept.
    Rework {
        request: GenerateRequest,
        roll: Roll,
        span: std::ops::Range<usize>,
    },
    /// Pieces of `bars` bars (1 to [`crate::model::MAX_BARS`]), one a variation.
    GenerateBars {
        request: GenerateRequest,
        bars: usize,
    },
    /// `bars` bars more after the end of `score` (its own notes come back as they are).
    Continue {
        request: GenerateRequest,
        score: Score,
        bars: usize,
    },
    /// Variations of `clip`, `strength` from 0 (the clip itself) to 1 (new music).
    Vary {
        request: GenerateRequest,
        clip: Score,
        strength: f32,
    },
    /// `count` pieces from `a` to `b` (their first 8 bars), the ends included.
    Blend {
        request: GenerateRequest,
        a: Score,
        b: Score,
        count: usize,
        strength: f32,
    },
    /// Voices written around `melody`, which stays as it is.
    Harmonize {
        request: GenerateRequest,
        melody: Score,
    },
    /// Fine-tune the model in `base` on `intake` and save it as `name`.
    Finetune {
        base: PathBuf,
        intake: Arc<Intake>,
        name: String,
        steps: usize,
    },
}

/// What the model thread reports.
#[derive(Debug, Clone)]
pub enum Event {
    Loaded {
        dir: PathBuf,
        name: String,
        device: String,
        defaults: Defaults,
        /// Styles the model was trained on, in label order.
        styles: Vec<String>,
    },
    LoadFailed {
        dir: PathBuf,
        message: String,
    },
    /// One denoising step: the rolls the model predicts now, one per variation, and the
    /// model's image behind each (the decoder's probabilities before thresholds). An edit
    /// writes a piece window by window: this is window `window` of `windows`, starting at step
    /// `offset` of the piece (a blend's pieces count as its windows, each at 0).
    Step {
        step: usize,
        total: usize,
        window: usize,
        windows: usize,
        offset: u32,
        preview: Vec<Roll>,
        fog: Vec<Fog>,
    },
    Done {
        request: GenerateRequest,
        rolls: Vec<Roll>,
        seconds: f64,
    },
    /// An edit (long piece, continuation, variation, blend, harmonization) finished: one
    /// score per variation.
    Edited {
        request: GenerateRequest,
        scores: Vec<Score>,
        seconds: f64,
    },
    /// Stopped by [`Worker::cancel`]; `steps_after_cancel` steps finished after the request
    /// (at most the one that was running).
    Cancelled {
        steps_after_cancel: usize,
    },
    Failed(String),
    FinetuneProgress {
        step: usize,
        total: usize,
        loss: f64,
    },
    FinetuneDone {
        dir: PathBuf,
        name: String,
        style: crate::roll::Style,
        seconds: f64,
    },
    /// The fine-tune stopped (cancelled or failed); nothing was saved.
    FinetuneStopped(String),
}

impl Event {
    /// The variant's name, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Loaded { .. } => "loaded",
            Event::LoadFailed { .. } => "load failed",
            Event::Step { .. } => "step",
            Event::Done { .. } => "done",
            Event::Edited { .. } => "edited",
            Event::Cancelled { .. } => "cancelled",
            Event::Failed(_) => "failed",
            Event::FinetuneProgress { .. } => "fine-tune step",
            Event::FinetuneDone { .. } => "fine-tune done",
            Event::FinetuneStopped(_) => "fine-tune stopped",
        }
    }
}

/// Handle on the model thread. Dropping it cancels any generation and lets the thread end.
pub struct Worker {
    commands: Option<Sender<Command>>,
    events: Receiver<Event>,
    cancel: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    /// Starts the thread. `repaint` is called after every event so the UI wakes up for it.
    pub fn spawn(repaint: impl Fn() + Send + 'static) -> std::io::Result<Worker> {
        let (commands, inbox) = channel::<Command>();
        let (outbox, events) = channel::<Event>();
        let cancel = Arc::new(AtomicBool::new(false));
        let flag = cancel.clone();
        let thread = std::thread::Builder::new()
            .name("diffroll-model".into())
            .spawn(move || {
                lower_priority();
                let send = |e: Event| {
                    let _ = outbox.send(e);
                    repaint();
                };
                serve(&inbox, &flag, &send);
            })?;
        Ok(Worker {
            commands: Some(commands),
            events,
            cancel,
            thread: Some(thread),
        })
    }

    pub fn send(&self, command: Command) {
        if !matches!(command, Command::Load { .. }) {
            self.cancel.store(false, Ordering::Release);
        }
        if let Some(tx) = &self.commands {
            // A closed channel means the thread died; the next poll says so.
            let _ = tx.send(command);
        }
    }

    /// Stops the running generation before its next step.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Release);
    }

    /// The next event, if any; a dead thread reads as a failure once.
    pub fn poll(&mut self) -> Option<Event> {
        match self.events.try_recv() {
            Ok(e) => Some(e),
            Err(std::sync::mpsc::TryRecvError::Empty) => None,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                if self.commands.take().is_some() {
                    Some(Event::Failed(
                        "the model thread stopped unexpectedly; restart diffroll".into(),
                    ))
                } else {
                    None
                }
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Release);
        self.commands = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Makes the calling thread yield to the UI thread and the renderer: on a 2-core machine a
/// frame otherwise waits for a core while the model computes (measured with
/// `diffroll app --measure-frames`). Compute threads (rayon's pool) call it too, see
/// [`lower_compute_priority`].
pub fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority on this thread's own id only changes its scheduling niceness.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
    }
}

/// Starts rayon's global pool (which burn's CPU backend computes on) with every thread at the
/// lower priority. Must run before anything else uses rayon; later calls change nothing.
pub fn lower_compute_priority() {
    let _ = rayon::ThreadPoolBuilder::new()
        .thread_name(|i| format!("diffroll-compute-{i}"))
        .start_handler(|_| lower_priority())
        .build_global();
}

fn serve(inbox: &Receiver<Command>, cancel: &AtomicBool, send: &dyn Fn(Event)) {
    // The loaded model and a description of the device it runs on.
    let mut pipeline: Option<(Pipeline, String)> = None;
    while let Ok(command) = inbox.recv() {
        match command {
            Command::Load { dir, device } => match load(&dir, device) {
                Ok((p, device)) => {
                    send(Event::Loaded {
                        dir: dir.clone(),
                        name: p.card.name.clone(),
                        device: device.clone(),
                        defaults: p.card.defaults.clone(),
                        styles: p.card.styles.clone(),
                    });
                    pipeline = Some((p, device));
                }
                Err(message) => {
                    pipeline = None;
                    send(Event::LoadFailed { dir, message });
                }
            },
            Command::Generate(request) => {
                generate(pipeline.as_ref(), request, None, cancel, send);
            }
            Command::Rework {
                request,
                roll,
                span,
            } => generate(
                pipeline.as_ref(),
                request,
                Some((&roll, span)),
                cancel,
                send,
            ),
            Command::GenerateBars { .. }
            | Command::Continue { .. }
            | Command::Vary { .. }
            | Command::Blend { .. }
            | Command::Harmonize { .. } => edit(pipeline.as_ref(), command, cancel, send),
            Command::Finetune {
                base,
                intake,
                name,
                steps,
            } => send(finetune(
                &base,
                &intake,
                &name,
                steps,
                pipeline.as_ref(),
                cancel,
                send,
            )),
        }
    }
}

/// The event for step `e` of window `window` of `windows`, which starts at step `offset` of
/// the piece.
fn step_event(
    e: &crate::model::StepEvent<'_>,
    window: usize,
    windows: usize,
    offset: u32,
) -> Event {
    Event::Step {
        step: e.step,
        total: e.total,
        window,
        windows,
        offset,
        preview: e.preview.to_vec(),
        fog: e.fog.to_vec(),
    }
}

/// Generates on the model thread (a rework of `rework`'s steps when given), sending every
/// denoising step and then the takes.
fn generate(
    pipeline: Option<&(Pipeline, String)>,
    request: GenerateRequest,
    rework: Option<(&Roll, std::ops::Range<usize>)>,
    cancel: &AtomicBool,
    send: &dyn Fn(Event),
) {
    let Some((p, _)) = pipeline else {
        send(Event::Failed("no model loaded".into()));
        return;
    };
    let started = Instant::now();
    let mut after_cancel = 0;
    let mut on_step = |e: crate::model::StepEvent<'_>| {
        if cancel.load(Ordering::Acquire) {
            after_cancel += 1;
        }
        send(step_event(&e, 0, 1, 0));
    };
    let generated = match rework {
        Some((roll, span)) => p.rework(&request, roll, span, Some(cancel), Some(&mut on_step)),
        None => p.generate(&request, Some(cancel), Some(&mut on_step)),
    };
    match generated {
        Ok(generated) => send(Event::Done {
            request,
            rolls: generated.rolls,
            seconds: started.elapsed().as_secs_f64(),
        }),
        Err(ModelError::Cancelled) => send(Event::Cancelled {
            steps_after_cancel: after_cancel,
        }),
        Err(e) => send(Event::Failed(e.to_string())),
    }
}

/// Runs an edit on the model thread, sending every step of every window and then the scores.
fn edit(
    pipeline: Option<&(Pipeline, String)>,
    command: Command,
    cancel: &AtomicBool,
    send: &dyn Fn(Event),
) {
    let Some((p, _)) = pipeline else {
        send(Event::Failed("no model loaded".into()));
        return;
    };
    let started = Instant::now();
    let mut after_cancel = 0;
    let mut on_step = |e: EditStep<'_>| {
        if cancel.load(Ordering::Acquire) {
            after_cancel += 1;
        }
        send(step_event(&e.event, e.window, e.windows, e.offset));
    };
    let on_step: OnEditStep<'_> = Some(&mut on_step);
    let cancel_flag = Some(cancel);
    let (request, edited) = match command {
        Command::GenerateBars { request, bars } => {
            let out = p.generate_bars(&request, bars, cancel_flag, on_step);
            (request, out)
        }
        Command::Continue {
            request,
            score,
            bars,
        } => {
            let out = p.continue_score(&request, &score, bars, cancel_flag, on_step);
            (request, out)
        }
        Command::Vary {
            request,
            clip,
            strength,
        } => {
            let out = p.vary(&request, &clip, strength, cancel_flag, on_step);
            (request, out)
        }
        Command::Blend {
            request,
            a,
            b,
            count,
            strength,
        } => {
            let out = p.blend(&request, [&a, &b], count, strength, cancel_flag, on_step);
            (request, out)
        }
        Command::Harmonize { request, melody } => {
            let out = p.harmonize(&request, &melody, cancel_flag, on_step);
            (request, out)
        }
        other => {
            send(Event::Failed(format!("not an edit: {other:?}")));
            return;
        }
    };
    match edited {
        Ok(scores) => send(Event::Edited {
            request,
            scores,
            seconds: started.elapsed().as_secs_f64(),
        }),
        Err(ModelError::Cancelled) => send(Event::Cancelled {
            steps_after_cancel: after_cancel,
        }),
        Err(e) => send(Event::Failed(e.to_string())),
    }
}

/// Runs a fine-tune on the model thread (on the loaded model's device), reporting each step.
fn finetune(
    base: &std::path::Path,
    intake: &Intake,
    name: &str,
    steps: usize,
    pipeline: Option<&(Pipeline, String)>,
    cancel: &AtomicBool,
    send: &dyn Fn(Event),
) -> Event {
    let Some((pipeline, device)) = pipeline else {
        return Event::FinetuneStopped("no model loaded to start from".into());
    };
    let mut on_progress = |p: &Progress| {
        send(Event::FinetuneProgress {
            step: p.step,
            total: p.total,
            loss: p.loss,
        });
    };
    let result = finetune::finetune(
        FinetuneRun {
            base,
            intake,
            name,
            config: FinetuneConfig::new().with_steps(steps.max(1)),
            device: pipeline.device().clone(),
            hardware: device.clone(),
        },
        Control {
            stop: cancel,
            time_limit: None,
            on_progress: &mut on_progress,
        },
    );
    match result {
        Ok(done) => Event::FinetuneDone {
            dir: done.dir,
            name: name.to_string(),
            style: done.style,
            seconds: done.seconds,
        },
        Err(e) => Event::FinetuneStopped(e.to_string()),
    }
}

fn load(dir: &std::path::Path, request: DeviceRequest) -> Result<(Pipeline, String), String> {
    let chosen = device::choose(request).map_err(|e| e.to_string())?;
    let pipeline = Pipeline::load(dir, &chosen.device).map_err(|e| e.to_string())?;
    Ok((pipeline, chosen.description))
}
