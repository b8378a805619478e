//! Music of any length, and edits of the musician's own music: long pieces written window by
//! window (outpainting with overlap), continuations, variations, blends of two pieces and
//! harmonizations of a melody. Each is a [`Plan`] for [`Pipeline::run_plan`] over 8-bar
//! windows; the notes the musician gave come back exactly, velocities included.

use std::collections::HashSet;
use std::sync::atomic::AtomicBool;

use burn::tensor::{Tensor, TensorData};

use super::{GenerateRequest, Pipeline, Plan, StepEvent};
use crate::model::ModelError;
use crate::model::schedule::TRAIN_STEPS;
use crate::roll::{Note, Roll, STEPS_PER_BAR, Score, Style, WINDOW_STEPS};

/// Most bars one generation writes (`--bars`, the app's length box, a continuation).
pub const MAX_BARS: usize = 64;
/// Longest piece an edit returns, in steps: 512 bars, the widest roll a GPU texture is
/// guaranteed to hold (8192 texels) at one texel a step.
pub const MAX_SCORE_STEPS: u32 = 8192;
/// Steps of music before the new bars that each further window is written to follow.
const CONTEXT_STEPS: u32 = 64;
const WINDOW: u32 = WINDOW_STEPS as u32;
const BAR: u32 = STEPS_PER_BAR as u32;

/// A step of an edit that writes several windows.
pub struct EditStep<'a> {
    /// The window being written (0-based) and how many there are.
    pub window: usize,
    pub windows: usize,
    /// Where the window starts in the piece, in steps.
    pub offset: u32,
    pub event: StepEvent<'a>,
}

/// Receives every step of every window.
pub type OnEditStep<'a> = Option<&'a mut dyn FnMut(EditStep<'_>)>;

/// The windows a long piece or continuation writes to take a piece from `from` to `to` steps.
pub fn extension_windows(from: u32, to: u32) -> usize {
    let mut cursor = from;
    let mut n = 0;
    while cursor < to {
        let start = cursor.saturating_sub(CONTEXT_STEPS);
        cursor = to.min(start + WINDOW);
        n += 1;
    }
    n
}

/// `on_step`, given each step of window `window` of `windows`, which starts at step `offset`
/// of the piece.
fn at_window<'a>(
    on_step: &'a mut OnEditStep<'_>,
    window: usize,
    windows: usize,
    offset: u32,
) -> impl FnMut(StepEvent<'_>) + 'a {
    move |event| {
        if let Some(cb) = on_step.as_mut() {
            cb(EditStep {
                window,
                windows,
                offset,
                event,
            });
        }
    }
}

/// Refuses a piece that would end past [`MAX_SCORE_STEPS`].
fn check_length(steps: u32) -> Result<(), ModelError> {
    if steps > MAX_SCORE_STEPS {
        return Err(ModelError::TooLong {
            bars: (steps / BAR) as usize,
            max: (MAX_SCORE_STEPS / BAR) as usize,
        });
    }
    Ok(())
}

fn check_bars(bars: usize) -> Result<(), ModelError> {
    if (1..=MAX_BARS).contains(&bars) {
        Ok(())
    } else {
        Err(ModelError::BarsOutOfRange {
            bars,
            max: MAX_BARS,
        })
    }
}

/// `request` for one further window: its own seed, so windows do not repeat one another.
fn window_request(request: &GenerateRequest, count: usize, window: usize) -> GenerateRequest {
    GenerateRequest {
        count,
        seed: request
            .seed
            .wrapping_add((window as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        ..request.clone()
    }
}

/// Whether two notes sound at the same pitch at the same time.
fn collides(a: &Note, b: &Note) -> bool {
    a.pitch == b.pitch && a.start < b.end && b.start < a.end
}

impl Pipeline {
    /// Scaled latents of `rolls` (8-bar windows), as the UNet sees them.
    pub fn encode_rolls(&self, rolls: &[&Roll]) -> Tensor<4> {
        self.card.latent_norm().normalize(
            self.autoencoder
                .encode(crate::model::rolls_to_tensor(rolls, &self.device)),
        )
    }

    /// Keep-mask over latent columns: 1 where every step of the column comes before `steps`.
    fn keep_before(&self, count: usize, steps: u32) -> Tensor<4> {
        let [c, h, w] = self.latent_shape();
        let f = WINDOW_STEPS / w;
        let row: Vec<f32> = (0..w)
            .map(|col| f32::from(u8::from(((col + 1) * f) as u32 <= steps)))
            .collect();
        let mask: Vec<f32> = (0..count * c * h).flat_map(|_| row.clone()).collect();
        Tensor::from_data(TensorData::new(mask, [count, c, h, w]), &self.device)
    }

    /// `request.count` pieces of `bars` bars (1 to [`MAX_BARS`]): the first 8 bars as
    /// [`Pipeline::generate`] writes them, then each further window written to follow the
    /// bars before it.
    pub fn generate_bars(
        &self,
        request: &GenerateRequest,
        bars: usize,
        cancel: Option<&AtomicBool>,
        mut on_step: OnEditStep<'_>,
    ) -> Result<Vec<Score>, ModelError> {
        check_bars(bars)?;
        let to = (bars * STEPS_PER_BAR) as u32;
        let windows = 1 + extension_windows(WINDOW.min(to), to);
        let first = {
            let mut first_step = at_window(&mut on_step, 0, windows, 0);
            self.generate(request, cancel, Some(&mut first_step))?
        };
        let mut scores: Vec<Score> = first
            .rolls
            .iter()
            .map(|roll| {
                let mut score = Score::from_roll(roll);
                score.truncate(to.min(WINDOW));
                score
            })
            .collect();
        let generated = Extension {
            melody: None,
            windows: (1, windows),
            hold_last: true,
        };
        self.extend(request, &mut scores, to, generated, cancel, on_step)?;
        Ok(scores)
    }

    /// `request.count` continuations of `score`: `bars` bars appended after its last bar,
    /// each window written to follow the music before it. The score's own notes come back
    /// unchanged. In `request.style`, or (none) in the style the music itself suggests: the
    /// unlabelled model follows the bars it is given.
    pub fn continue_score(
        &self,
        request: &GenerateRequest,
        score: &Score,
        bars: usize,
        cancel: Option<&AtomicBool>,
        on_step: OnEditStep<'_>,
    ) -> Result<Vec<Score>, ModelError> {
        check_bars(bars)?;
        if score.is_empty() {
            return Err(ModelError::NothingToBuildOn("the piece"));
        }
        let from = score.steps.div_ceil(BAR) * BAR;
        let to = from + (bars * STEPS_PER_BAR) as u32;
        check_length(to)?;
        let mut base = score.clone();
        base.steps = from;
        base.style = request.style;
        let mut scores = vec![base; request.count];
        let windows = extension_windows(from, to);
        let follow = Extension {
            melody: None,
            windows: (0, windows),
            hold_last: false,
        };
        self.extend(request, &mut scores, to, follow, cancel, on_step)?;
        Ok(scores)
    }

    /// Writes every score (all as long, each in its own style) on to `to` steps, window by
    /// window: a window holds up to [`CONTEXT_STEPS`] of what is there, kept by inpainting,
    /// and the new steps after it. A note the last window cut at its end and the model holds
    /// on goes on sounding, so no note is cut at a window boundary. With `melody`, every
    /// window also holds the melody's notes in its new steps ([`Pipeline::harmonize`]).
    fn extend(
        &self,
        request: &GenerateRequest,
        scores: &mut [Score],
        to: u32,
        how: Extension<'_>,
        cancel: Option<&AtomicBool>,
        mut on_step: OnEditStep<'_>,
    ) -> Result<(), ModelError> {
        let Extension {
            melody,
            windows,
            hold_last,
        } = how;
        let Some(first) = scores.first() else {
            return Ok(());
        };
        let mut cursor = first.steps;
        assert!(
            scores.iter().all(|s| s.steps == cursor),
            "scores extended together are equally long"
        );
        let styles: Vec<Option<Style>> = scores.iter().map(|s| s.style).collect();
        // Generated notes cut at the last window's end, by (pitch, start).
        let mut open: Vec<HashSet<(u8, u32)>> = scores
            .iter()
            .map(|s| {
                s.notes
                    .iter()
                    .filter(|n| hold_last && n.end == cursor)
                    .map(|n| (n.pitch, n.start))
                    .collect()
            })
            .collect();
        let (mut window, total) = windows;
        while cursor < to {
            let start = cursor.saturating_sub(CONTEXT_STEPS);
            let end = to.min(start + WINDOW);
            let context: Vec<Roll> = scores.iter().map(|s| s.window(start, WINDOW)).collect();
            let in_window: Vec<Note> = melody
                .unwrap_or_default()
                .iter()
                .filter(|n| n.start < start + WINDOW && n.end > cursor)
                .map(|n| Note {
                    start: n.start.max(cursor) - start,
                    end: n.end.min(start + WINDOW) - start,
                    ..*n
                })
                .collect();
            let kept = cursor - start;
            let known = (kept > 0).then(|| {
                let repeated: Vec<Roll> = context.iter().map(|c| repeat_context(c, kept)).collect();
                let refs: Vec<&Roll> = repeated.iter().collect();
                (
                    self.encode_rolls(&refs),
                    self.keep_before(scores.len(), kept),
                )
            });
            let project = |x0: Tensor<4>| -> Tensor<4> {
                let imposed: Vec<Roll> = self
                    .decode(x0)
                    .into_iter()
                    .zip(&context)
                    .map(|((drawn, _), context)| impose(&drawn, context, kept, &in_window))
                    .collect();
                let refs: Vec<&Roll> = imposed.iter().collect();
                self.encode_rolls(&refs)
            };
            let sub = window_request(request, scores.len(), window);
            let mut step = at_window(&mut on_step, window, total, start);
            let generated = self.run_plan(
                &sub,
                Plan {
                    styles: Some(styles.clone()),
                    known,
                    project: melody
                        .is_some()
                        .then_some(&project as &dyn Fn(Tensor<4>) -> Tensor<4>),
                    ..Plan::default()
                },
                cancel,
                Some(&mut step),
            )?;
            for ((score, take), open) in scores.iter_mut().zip(&generated.rolls).zip(&mut open) {
                let drawn: Vec<Note> = take
                    .notes()
                    .into_iter()
                    .map(|n| Note {
                        start: n.start + start,
                        end: n.end + start,
                        ..n
                    })
                    .collect();
                let mut still_open = HashSet::new();
                for note in score.notes.iter_mut() {
                    if !open.contains(&(note.pitch, note.start)) {
                        continue;
                    }
                    if let Some(held) = drawn
                        .iter()
                        .find(|d| d.pitch == note.pitch && d.start < cursor && d.end > cursor)
                    {
                        note.end = held.end.min(end);
                        if note.end == end {
                            still_open.insert((note.pitch, note.start));
                        }
                    }
                }
                let sounding: Vec<&Note> = melody
                    .unwrap_or_default()
                    .iter()
                    .filter(|n| n.start < end && n.end > cursor)
                    .collect();
                for new in drawn.iter().filter(|d| (cursor..end).contains(&d.start)) {
                    let new = Note {
                        end: new.end.min(end),
                        ..*new
                    };
                    if sounding.iter().any(|m| collides(m, &new)) {
                        continue;
                    }
                    if new.end == end {
                        still_open.insert((new.pitch, new.start));
                    }
                    score.notes.push(new);
                }
                score
                    .notes
                    .extend(sounding.iter().filter(|n| n.start >= cursor).map(|n| **n));
                score.notes.sort_unstable();
                score.steps = end;
                *open = still_open;
            }
            cursor = end;
            window += 1;
        }
        Ok(())
    }

    /// `request.count` variations of `clip`: each 8-bar window of it noised to the fraction
    /// `strength` of the schedule (0 to 1) and denoised again, in proportionally fewer steps.
    /// 0 gives the clip itself; the higher, the further the takes move from it. In
    /// `request.style`, or (none) the style the clip suggests.
    pub fn vary(
        &self,
        request: &GenerateRequest,
        clip: &Score,
        strength: f32,
        cancel: Option<&AtomicBool>,
        mut on_step: OnEditStep<'_>,
    ) -> Result<Vec<Score>, ModelError> {
        if !(0.0..=1.0).contains(&strength) {
            return Err(ModelError::BadStrength(strength));
        }
        if clip.is_empty() {
            return Err(ModelError::NothingToBuildOn("the clip"));
        }
        let mut takes = vec![clip.clone(); request.count];
        let t = ((TRAIN_STEPS - 1) as f32 * strength).round() as usize;
        if t == 0 {
            return Ok(takes);
        }
        for take in &mut takes {
            take.notes.clear();
            take.style = request.style.or(clip.style);
        }
        let windows = clip.steps.div_ceil(WINDOW) as usize;
        for w in 0..windows {
            let start = w as u32 * WINDOW;
            let end = clip.steps.min(start + WINDOW);
            let roll = clip.window(start, WINDOW);
            let z = self.encode_rolls(&[&roll]).repeat_dim(0, request.count);
            let mut sub = window_request(request, request.count, w);
            sub.steps = ((request.steps as f32 * strength).ceil() as usize).max(1);
            sub.restart = request.restart.filter(|r| r.t < t);
            let mut step = at_window(&mut on_step, w, windows, start);
            let styles = vec![request.style.or(clip.style); request.count];
            let generated = self.run_plan(
                &sub,
                Plan {
                    styles: Some(styles),
                    start: Some((z, t)),
                    ..Plan::default()
                },
                cancel,
                Some(&mut step),
            )?;
            for (take, roll) in takes.iter_mut().zip(&generated.rolls) {
                take.notes.extend(
                    roll.notes()
                        .into_iter()
                        .map(|n| Note {
                            start: n.start + start,
                            end: (n.end + start).min(end),
                            ..n
                        })
                        .filter(|n| n.start < end),
                );
            }
        }
        for take in &mut takes {
            take.notes.sort_unstable();
        }
        Ok(takes)
    }

    /// `count` pieces (at least 2) from `a` to `b` (their first 8 bars): the two ends are
    /// their round trips through the autoencoder; between them, the latents blended in
    /// proportion and denoised from a noise level that rises to `strength` halfway (so each
    /// blend sounds like music rather than a superposition), all from the same noise so
    /// neighbours differ only by the blend.
    pub fn blend(
        &self,
        request: &GenerateRequest,
        [a, b]: [&Score; 2],
        count: usize,
        strength: f32,
        cancel: Option<&AtomicBool>,
        mut on_step: OnEditStep<'_>,
    ) -> Result<Vec<Score>, ModelError> {
        if count < 2 {
            return Err(ModelError::BlendTooShort(count));
        }
        if !(0.0..=1.0).contains(&strength) {
            return Err(ModelError::BadStrength(strength));
        }
        if a.is_empty() || b.is_empty() {
            return Err(ModelError::NothingToBuildOn("each piece to blend"));
        }
        let steps = a.steps.max(b.steps).min(WINDOW);
        let (ra, rb) = (a.window(0, WINDOW), b.window(0, WINDOW));
        let (za, zb) = (self.encode_rolls(&[&ra]), self.encode_rolls(&[&rb]));
        let norm =
            |z: &Tensor<4>| -> f32 { z.clone().powi_scalar(2).sum().sqrt().into_scalar::<f32>() };
        let (na, nb) = (norm(&za), norm(&zb));
        let style = request.style.or(a.style).or(b.style);
        let mut out = Vec::with_capacity(count);
        for k in 0..count {
            let lambda = k as f32 / (count - 1) as f32;
            // Blended in proportion, at the norm the two ends have in proportion: a plain
            // average of two latents is fainter than either, and decodes to fewer notes.
            let mixed = za.clone().mul_scalar(1.0 - lambda) + zb.clone().mul_scalar(lambda);
            let target = na * (1.0 - lambda) + nb * lambda;
            let z = mixed.clone().mul_scalar(target / norm(&mixed).max(1e-6));
            let level = strength * (std::f32::consts::PI * lambda).sin();
            let t = ((TRAIN_STEPS - 1) as f32 * level).round() as usize;
            let roll = if t == 0 {
                self.decode(z).remove(0).0
            } else {
                let mut sub = window_request(request, 1, 0);
                sub.steps = ((request.steps as f32 * level).ceil() as usize).max(1);
                sub.restart = request.restart.filter(|r| r.t < t);
                let mut step = at_window(&mut on_step, k, count, 0);
                self.run_plan(
                    &sub,
                    Plan {
                        styles: Some(vec![style]),
                        start: Some((z, t)),
                        ..Plan::default()
                    },
                    cancel,
                    Some(&mut step),
                )?
                .rolls
                .remove(0)
            };
            let mut score = Score::from_roll(&roll);
            score.truncate(steps);
            score.style = style;
            score.tempo_bpm = a.tempo_bpm;
            score.program = a.program;
            out.push(score);
        }
        Ok(out)
    }

    /// `request.count` harmonizations of `melody`: the other voices written around it, window
    /// by window as a long piece is written. At every step the melody is put
    /// into the model's prediction (decoded, the melody's notes set, encoded again), so the
    /// voices are written to sound with it; the melody's notes come back exactly, and no new
    /// note doubles one of them at its own pitch. In `request.style`, or (none) the style the
    /// melody suggests.
    pub fn harmonize(
        &self,
        request: &GenerateRequest,
        melody: &Score,
        cancel: Option<&AtomicBool>,
        on_step: OnEditStep<'_>,
    ) -> Result<Vec<Score>, ModelError> {
        if melody.is_empty() {
            return Err(ModelError::NothingToBuildOn("the melody"));
        }
        let to = melody.steps.div_ceil(BAR) * BAR;
        check_length(to)?;
        let empty = Score {
            notes: Vec::new(),
            steps: 0,
            style: request.style.or(melody.style),
            ..melody.clone()
        };
        let mut scores = vec![empty; request.count];
        let windows = extension_windows(0, to);
        let around = Extension {
            melody: Some(&melody.notes),
            windows: (0, windows),
            hold_last: false,
        };
        self.extend(request, &mut scores, to, around, cancel, on_step)?;
        Ok(scores)
    }
}

/// `context` (a window whose first `kept` steps hold music) with those steps played again
/// until the window is full, for encoding the context. The encoder sees across the window,
/// so a context followed by silence puts "silence follows" into the very latents inpainting
/// keeps, and the model writes the new bars thinner (chorales: 9.4 onsets a bar after the
/// first window against 15.2 in it); played again, the context reads as music that goes on
/// (13.9), and what fills the rest is never kept.
fn repeat_context(context: &Roll, kept: u32) -> Roll {
    let own = notes_before(context, kept);
    let mut notes = Vec::new();
    let mut offset = 0;
    while offset < WINDOW {
        notes.extend(
            own.iter()
                .filter(|n| n.start + offset < WINDOW)
                .map(|n| Note {
                    start: n.start + offset,
                    end: (n.end + offset).min(WINDOW),
                    ..*n
                }),
        );
        offset += kept;
    }
    let mut roll = Roll::from_notes(&notes, WINDOW_STEPS);
    (roll.style, roll.tempo_bpm, roll.program) =
        (context.style, context.tempo_bpm, context.program);
    roll
}

/// The notes of `roll` that start before `steps`, ended there.
fn notes_before(roll: &Roll, steps: u32) -> Vec<Note> {
    roll.notes()
        .into_iter()
        .filter(|n| n.start < steps)
        .map(|n| Note {
            end: n.end.min(steps),
            ..n
        })
        .collect()
}

/// What `Pipeline::extend` writes around.
struct Extension<'a> {
    /// Notes every new window must hold, exactly.
    melody: Option<&'a [Note]>,
    /// For the progress reports: the first window's index, and how many there are in all.
    windows: (usize, usize),
    /// The scores' notes that end where they stop were cut there by a window (not the
    /// musician's): the model may hold them on.
    hold_last: bool,
}

/// `drawn` (a decoded prediction of a window) with its first `kept` steps replaced by
/// `context`'s and the melody's notes set in the rest, over anything drawn at their pitch
/// while they sound.
fn impose(drawn: &Roll, context: &Roll, kept: u32, melody: &[Note]) -> Roll {
    let mut notes = notes_before(context, kept);
    notes.extend(
        drawn
            .notes()
            .into_iter()
            .filter(|n| n.start >= kept && !melody.iter().any(|m| collides(m, n))),
    );
    notes.extend_from_slice(melody);
    let mut roll = Roll::from_notes(&notes, drawn.steps());
    (roll.style, roll.tempo_bpm, roll.program) = (drawn.style, drawn.tempo_bpm, drawn.program);
    roll
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_overlap_by_the_context_and_cover_the_piece() {
        assert_eq!(extension_windows(128, 128), 0);
        // 16 bars from 8: one window (bars 5-12 kept 5-8), another (9-16 kept 9-12).
        assert_eq!(extension_windows(128, 256), 2);
        assert_eq!(extension_windows(0, 128), 1);
        assert_eq!(extension_windows(32, 128), 1);
        assert_eq!(extension_windows(128, 1024), 14);
    }

    #[test]
    fn a_context_is_played_again_to_fill_its_window() {
        let context = Roll::from_notes(&[Note::new(60, 0, 30, 80), Note::new(64, 40, 48, 80)], 128);
        let keys: Vec<_> = repeat_context(&context, 48)
            .notes()
            .iter()
            .map(Note::key)
            .collect();
        assert_eq!(
            keys,
            vec![
                (60, 0, 30),
                (64, 40, 48),
                (60, 48, 78),
                (64, 88, 96),
                (60, 96, 126),
            ]
        );
    }

    #[test]
    fn imposing_keeps_the_context_and_sets_the_melody() {
        let context = Roll::from_notes(&[Note::new(60, 0, 70, 80)], 128);
        let drawn = Roll::from_notes(
            &[
                Note::new(48, 0, 16, 80),
                Note::new(72, 64, 80, 80),
                Note::new(55, 64, 96, 80),
            ],
            128,
        );
        let melody = [Note::new(72, 72, 90, 80)];
        let keys: Vec<_> = impose(&drawn, &context, 64, &melody)
            .notes()
            .iter()
            .map(Note::key)
            .collect();
        assert_eq!(keys, vec![(60, 0, 64), (55, 64, 96), (72, 72, 90)]);
    }
}
