//! What the history holds: takes of any length (generated, opened from MIDI files, played in,
//! regenerated in some bars, continued, varied, blended or harmonized), their variations with
//! the notes they play and export, and the plan for regenerating bars of a take longer than
//! the model's window.

use std::ops::Range;
use std::path::PathBuf;

use super::roll_view::RollImage;
use crate::audio::Sequence;
use crate::model::{Fog, GenerateRequest};
use crate::roll::{
    Note, Roll, STEPS_PER_BAR, Score, Style, WINDOW_BARS, WINDOW_STEPS, splice_window,
    window_around,
};

/// How a take came to be.
#[derive(Debug, Clone)]
pub enum Origin {
    /// Generate: new pieces from noise.
    Generated(GenerateRequest),
    /// Regenerate bars: new takes on bars `bars` (counted from 1) of take number `from`.
    Reworked {
        request: GenerateRequest,
        from: usize,
        bars: (usize, usize),
    },
    /// A MIDI file opened from disk.
    Opened { path: PathBuf },
    /// Played in on a MIDI input (`port` as the system names it).
    Recorded { port: String, tempo_bpm: f32 },
    /// Generate with a length other than the model's window.
    Long {
        request: GenerateRequest,
        bars: usize,
    },
    /// Take number `from` with `bars` bars more after it.
    Continued {
        request: GenerateRequest,
        from: usize,
        bars: usize,
    },
    /// Variations of take number `from`.
    Varied {
        request: GenerateRequest,
        from: usize,
        strength: f32,
    },
    /// Pieces from take number `a` to take number `b`.
    Blended {
        request: GenerateRequest,
        a: usize,
        b: usize,
    },
    /// Voices written around the top line of take number `from`.
    Harmonized {
        request: GenerateRequest,
        from: usize,
    },
}

impl Origin {
    /// The model request behind the take, if the model made it.
    pub fn request(&self) -> Option<&GenerateRequest> {
        match self {
            Origin::Generated(request)
            | Origin::Reworked { request, .. }
            | Origin::Long { request, .. }
            | Origin::Continued { request, .. }
            | Origin::Varied { request, .. }
            | Origin::Blended { request, .. }
            | Origin::Harmonized { request, .. } => Some(request),
            Origin::Opened { .. } | Origin::Recorded { .. } => None,
        }
    }

    /// One line for the history strip's hover text.
    pub fn describe(&self) -> String {
        match self {
            Origin::Generated(r) => format!("seed {}, {} steps", r.seed, r.steps),
            Origin::Reworked {
                request,
                from,
                bars,
            } => format!(
                "bars {}-{} of take {from} regenerated, seed {}",
                bars.0, bars.1, request.seed
            ),
            Origin::Opened { path } => format!("opened from {}", path.display()),
            Origin::Recorded { port, tempo_bpm } => {
                format!("played in on {port} at {tempo_bpm:.0} BPM")
            }
            Origin::Long { request, bars } => {
                format!(
                    "{bars} bars, seed {}, {} steps",
                    request.seed, request.steps
                )
            }
            Origin::Continued {
                request,
                from,
                bars,
            } => format!(
                "take {from} continued by {bars} bars, seed {}",
                request.seed
            ),
            Origin::Varied {
                request,
                from,
                strength,
            } => format!(
                "take {from} varied at strength {strength:.2}, seed {}",
                request.seed
            ),
            Origin::Blended { request, a, b } => {
                format!("blend from take {a} to take {b}, seed {}", request.seed)
            }
            Origin::Harmonized { request, from } => format!(
                "voices around the top line of take {from}, seed {}",
                request.seed
            ),
        }
    }
}

/// One variation of a take.
#[derive(Debug, Clone)]
pub struct Variation {
    /// What the roll view shows (a roll has no velocities).
    pub roll: Roll,
    /// The notes Play and Export use where the roll alone would lose something (velocities,
    /// notes overlapping on one key): an opened file's, and those of takes reworked from one.
    /// `None`: the roll's own notes.
    pub notes: Option<Vec<Note>>,
}

impl Variation {
    pub fn of_roll(roll: Roll) -> Variation {
        Variation { roll, notes: None }
    }

    /// `notes` kept as they are, drawn into a roll of `steps` with `like`'s tempo, style and
    /// program.
    pub fn of_notes(notes: Vec<Note>, steps: usize, like: &Roll) -> Variation {
        let mut roll = Roll::from_notes(&notes, steps);
        (roll.tempo_bpm, roll.style, roll.program) = (like.tempo_bpm, like.style, like.program);
        Variation {
            roll,
            notes: Some(notes),
        }
    }

    /// The score's notes as they are (velocities included), drawn with its tempo, style and
    /// program.
    pub fn of_score(score: Score) -> Variation {
        let like = score.window(0, 0);
        Variation::of_notes(score.notes, score.steps as usize, &like)
    }

    /// The notes to play and export.
    pub fn notes(&self) -> Vec<Note> {
        match &self.notes {
            Some(notes) => notes.clone(),
            None => self.roll.notes(),
        }
    }

    /// Bytes of memory the variation holds (its roll's planes and its notes), for the
    /// history's budget.
    pub fn bytes(&self) -> usize {
        2 * crate::roll::PITCHES * self.roll.steps()
            + self
                .notes
                .as_ref()
                .map_or(0, |n| n.len() * std::mem::size_of::<Note>())
    }
}

/// One entry of the history: a Generate, a Regenerate bars or an opened file, with its
/// variations (all of one length).
pub struct Take {
    /// Counted from 1 in the order takes were made; kept when older takes leave the history.
    pub number: usize,
    pub origin: Origin,
    pub variations: Vec<Variation>,
    /// Steps at which bars start: the file's time signatures for an opened file (and takes
    /// reworked from it), every 16 steps otherwise.
    pub bar_starts: Vec<u32>,
    /// The piece's own tempo (an opened file's, kept by takes reworked from it); `None`: the
    /// style's usual tempo.
    pub tempo_bpm: Option<f32>,
    /// Seconds the model took (0 for an opened file).
    pub seconds: f64,
    pub(super) thumbs: Vec<egui::TextureHandle>,
}

impl Take {
    /// Steps of the take (every variation has as many).
    pub fn steps(&self) -> usize {
        self.variations.first().map_or(0, |v| v.roll.steps())
    }

    pub fn bars(&self) -> usize {
        self.bar_starts.len()
    }

    pub fn bytes(&self) -> usize {
        self.variations.iter().map(Variation::bytes).sum()
    }

    /// A file name for exporting variation `variation` (from 0) with `extension`.
    pub fn file_name(&self, variation: usize, extension: &str) -> String {
        let v = variation + 1;
        let style = |i: usize| {
            self.variations
                .get(i)
                .and_then(|v| v.roll.style)
                .map_or("piece", Style::name)
        };
        match &self.origin {
            Origin::Generated(r) => {
                format!("diffroll-{}-{}-{v}.{extension}", style(variation), r.seed)
            }
            Origin::Reworked { request, bars, .. } => format!(
                "diffroll-{}-bars-{}-{}-{}-{v}.{extension}",
                style(variation),
                bars.0,
                bars.1,
                request.seed
            ),
            Origin::Opened { path } => {
                let stem = path
                    .file_stem()
                    .map_or_else(|| "piece".into(), |s| s.to_string_lossy().into_owned());
                format!("{stem}.{extension}")
            }
            Origin::Recorded { .. } => format!("diffroll-played-{}-{v}.{extension}", self.number),
            Origin::Long { request, bars } => format!(
                "diffroll-{}-{bars}-bars-{}-{v}.{extension}",
                style(variation),
                request.seed
            ),
            Origin::Continued { from, bars, .. } => format!(
                "diffroll-{}-take-{from}-plus-{bars}-bars-{v}.{extension}",
                style(variation)
            ),
            Origin::Varied { from, .. } => format!(
                "diffroll-{}-take-{from}-varied-{v}.{extension}",
                style(variation)
            ),
            Origin::Blended { a, b, .. } => {
                format!("diffroll-blend-{a}-to-{b}-{v}.{extension}")
            }
            Origin::Harmonized { from, .. } => format!(
                "diffroll-{}-take-{from}-harmonized-{v}.{extension}",
                style(variation)
            ),
        }
    }

    /// Variation `variation` as the model takes it in: its notes and velocities over the
    /// take's length, its style, program and the tempo it plays at (`tempo_bpm`).
    pub fn score(&self, variation: usize, tempo_bpm: f32) -> Option<Score> {
        let v = self.variations.get(variation)?;
        let mut score = Score::new(v.notes(), self.steps() as u32);
        score.style = v.roll.style;
        score.tempo_bpm = tempo_bpm;
        score.program = v.roll.program;
        Some(score)
    }
}

/// A variation as Play and Export take it: its notes (velocities included), length, tempo and
/// program.
#[derive(Debug, Clone, PartialEq)]
pub struct Piece {
    pub notes: Vec<Note>,
    pub steps: u32,
    pub tempo_bpm: f32,
    pub program: u8,
}

impl Piece {
    pub fn new(variation: &Variation, tempo_bpm: f32) -> Piece {
        Piece {
            notes: variation.notes(),
            steps: variation.roll.steps() as u32,
            tempo_bpm,
            program: variation.roll.program,
        }
    }

    pub fn sequence(&self) -> Sequence {
        Sequence::from_notes(
            &self.notes,
            self.steps,
            self.tempo_bpm,
            &[],
            self.program,
            0,
        )
    }

    /// The piece as a type-1 MIDI file with one track named `name`.
    pub fn midi(&self, name: &str) -> Vec<u8> {
        crate::midi::write(
            &self.notes,
            &crate::midi::ExportOptions {
                tempo_bpm: self.tempo_bpm,
                program: self.program,
                track_name: name.to_string(),
            },
        )
    }
}

/// What the model thread is working on for the UI: how its previews are drawn and what its
/// finished rolls become.
#[derive(Debug, Clone)]
pub enum Job {
    /// New eight-bar pieces.
    Generate,
    /// New takes on some bars of a variation of take number `from`.
    Rework {
        plan: ReworkPlan,
        from: usize,
        /// The variation reworked, whole, and the notes it plays.
        piece: Variation,
        notes: Vec<Note>,
        bar_starts: Vec<u32>,
        tempo_bpm: Option<f32>,
    },
    /// A piece written window by window (long, continued, varied, blended, harmonized).
    Edit(EditJob),
}

/// Which edit an [`EditJob`] is.
#[derive(Debug, Clone, PartialEq)]
pub enum EditKind {
    Long { bars: usize },
    Continue { from: usize, bars: usize },
    Vary { from: usize, strength: f32 },
    Blend { a: usize, b: usize },
    Harmonize { from: usize },
}

impl EditKind {
    /// The button that starts it.
    pub fn name(&self) -> &'static str {
        match self {
            EditKind::Long { .. } => "Generate",
            EditKind::Continue { .. } => "Continue",
            EditKind::Vary { .. } => "Vary",
            EditKind::Blend { .. } => "Blend",
            EditKind::Harmonize { .. } => "Harmonize",
        }
    }
}

/// An edit the model thread writes window by window, and the piece its previews are drawn
/// into.
#[derive(Debug, Clone)]
pub struct EditJob {
    pub kind: EditKind,
    /// Steps of the finished piece.
    pub steps: u32,
    /// What the piece holds while the model writes: the music it was given, and the windows
    /// written so far.
    pub shown: Vec<Note>,
    /// Bars of the finished piece.
    pub bar_starts: Vec<u32>,
    /// The piece's own tempo (a file's or a recording's), kept by the take it makes.
    pub tempo_bpm: Option<f32>,
    /// The window being written: its index, first step and latest preview.
    current: Option<(usize, u32, Roll)>,
}

impl EditJob {
    pub fn new(
        kind: EditKind,
        steps: u32,
        shown: Vec<Note>,
        bar_starts: Vec<u32>,
        tempo_bpm: Option<f32>,
    ) -> EditJob {
        EditJob {
            kind,
            steps,
            shown,
            bar_starts,
            tempo_bpm,
            current: None,
        }
    }

    /// Bars of 4/4 from `from` up to `to` steps, after `bar_starts` (those before `from`).
    pub fn bars_up_to(bar_starts: &[u32], from: u32, to: u32) -> Vec<u32> {
        let mut bars: Vec<u32> = bar_starts.iter().copied().filter(|&b| b < from).collect();
        bars.extend((from..to).step_by(STEPS_PER_BAR));
        bars
    }

    /// Notes the step's `preview` of the window at `offset` puts into the piece: a finished
    /// window stays in the picture while the next is written. A blend's windows are pieces of
    /// their own, each drawn alone.
    pub fn step(&mut self, window: usize, offset: u32, preview: &Roll) {
        if let Some((last, at, roll)) = self.current.take()
            && last != window
            && !matches!(self.kind, EditKind::Blend { .. })
        {
            self.shown = self.with_window(at, &roll);
        }
        self.current = Some((window, offset, preview.clone()));
    }

    /// The piece with the steps of `window` (a model window whose step 0 is `offset`)
    /// replaced by what it plays.
    fn with_window(&self, offset: u32, window: &Roll) -> Vec<Note> {
        let span = offset..(offset + window.steps() as u32).min(self.steps);
        splice_window(&self.shown, window, offset, span)
    }
}

impl Job {
    /// What the roll view shows of one step's prediction `preview` (a model window), and of
    /// the model's image `fog` behind it when given: a new piece as it is, a rework's window
    /// put into the whole piece, the model's image over the bars written anew.
    /// An edit's window is drawn at `offset`, its place in the piece.
    pub fn preview_image(
        &self,
        preview: &Roll,
        fog: Option<&Fog>,
        offset: u32,
        version: u64,
    ) -> RollImage {
        match self {
            Job::Edit(edit) => {
                let blend = matches!(edit.kind, EditKind::Blend { .. });
                let offset = if blend { 0 } else { offset };
                let mut shown =
                    Roll::from_notes(&edit.with_window(offset, preview), edit.steps as usize);
                (shown.tempo_bpm, shown.style, shown.program) =
                    (preview.tempo_bpm, preview.style, preview.program);
                let image = RollImage::new(&shown, version).with_bars(&edit.bar_starts);
                let end = (offset as usize + preview.steps()).min(edit.steps as usize);
                match fog {
                    Some(fog) => image.with_fog(fog, offset as usize, offset as usize..end),
                    None => image,
                }
            }
            Job::Generate => {
                let image = RollImage::new(preview, version);
                match fog {
                    Some(fog) => image.with_fog(fog, 0, 0..preview.steps()),
                    None => image,
                }
            }
            Job::Rework {
                plan,
                piece,
                notes,
                bar_starts,
                ..
            } => {
                let shown = Roll::from_notes(&plan.put_back(notes, preview), piece.roll.steps());
                let image = RollImage::new(&shown, version).with_bars(bar_starts);
                match fog {
                    Some(fog) => image.with_fog(
                        fog,
                        plan.window_start as usize,
                        plan.span.start as usize..plan.span.end as usize,
                    ),
                    None => image,
                }
            }
        }
    }

    /// The take an edit's finished `scores` make, their notes and velocities kept.
    pub fn finish_scores(self, request: GenerateRequest, scores: Vec<Score>, seconds: f64) -> Take {
        let edit = match self {
            Job::Edit(edit) => edit,
            // A window's worth from Generate or a rework: the scores are its rolls.
            other => {
                let rolls = scores.iter().map(Score::to_roll).collect();
                return other.finish(request, rolls, seconds);
            }
        };
        let origin = match edit.kind {
            EditKind::Long { bars } => Origin::Long { request, bars },
            EditKind::Continue { from, bars } => Origin::Continued {
                request,
                from,
                bars,
            },
            EditKind::Vary { from, strength } => Origin::Varied {
                request,
                from,
                strength,
            },
            EditKind::Blend { a, b } => Origin::Blended { request, a, b },
            EditKind::Harmonize { from } => Origin::Harmonized { request, from },
        };
        let steps = scores.iter().map(|s| s.steps).max().unwrap_or(edit.steps);
        let variations = scores
            .into_iter()
            .map(|mut score| {
                // Every variation of a take is as long as the take.
                score.steps = steps;
                Variation::of_score(score)
            })
            .collect();
        let mut bar_starts: Vec<u32> = edit.bar_starts.into_iter().filter(|&b| b < steps).collect();
        if bar_starts.is_empty() {
            bar_starts = crate::midi::bar_starts(&[], steps);
        }
        Take {
            number: 0,
            origin,
            variations,
            bar_starts,
            tempo_bpm: edit.tempo_bpm,
            seconds,
            thumbs: Vec::new(),
        }
    }

    /// The take the model's finished `rolls` make (numbered and given thumbnails when filed).
    pub fn finish(self, request: GenerateRequest, rolls: Vec<Roll>, seconds: f64) -> Take {
        let (origin, variations, bar_starts, tempo_bpm) = match self {
            Job::Edit(edit) => {
                let scores = rolls.iter().map(Score::from_roll).collect();
                return Job::Edit(edit).finish_scores(request, scores, seconds);
            }
            Job::Generate => {
                let steps = rolls.first().map_or(WINDOW_STEPS, Roll::steps);
                (
                    Origin::Generated(request),
                    rolls.into_iter().map(Variation::of_roll).collect(),
                    crate::midi::bar_starts(&[], steps as u32),
                    None,
                )
            }
            Job::Rework {
                plan,
                from,
                piece,
                notes,
                bar_starts,
                tempo_bpm,
            } => {
                let variations = rolls
                    .iter()
                    .map(|take| {
                        let new = plan.put_back(&notes, take);
                        let mut variation =
                            Variation::of_notes(new, piece.roll.steps(), &piece.roll);
                        variation.roll.style = take.style;
                        if piece.notes.is_none() {
                            // The roll holds everything a generated piece has.
                            variation.notes = None;
                        }
                        variation
                    })
                    .collect();
                let origin = Origin::Reworked {
                    request,
                    from,
                    bars: plan.bars,
                };
                (origin, variations, bar_starts, tempo_bpm)
            }
        };
        Take {
            number: 0,
            origin,
            variations,
            bar_starts,
            tempo_bpm,
            seconds,
            thumbs: Vec::new(),
        }
    }
}

/// Regenerate bars on a take of any length: the bars written anew (at most a model window's
/// worth), and the 8-bar window around them that the model sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReworkPlan {
    /// First and last bar written anew, counted from 1.
    pub bars: (usize, usize),
    /// The steps of the piece written anew.
    pub span: Range<u32>,
    /// First step of the model window.
    pub window_start: u32,
}

impl ReworkPlan {
    /// The plan for bars `bars` (either order) of a piece of `steps` steps whose bars start
    /// at `bar_starts`: the bars are kept inside the piece and cut to what one window holds
    /// (at most [`WINDOW_BARS`] bars and [`WINDOW_STEPS`] steps). `None` for a piece without
    /// bars.
    pub fn new(bar_starts: &[u32], steps: u32, bars: (usize, usize)) -> Option<ReworkPlan> {
        let count = bar_starts.len();
        if count == 0 {
            return None;
        }
        let first = bars.0.min(bars.1).clamp(1, count);
        let mut last = bars
            .0
            .max(bars.1)
            .clamp(first, count)
            .min(first + WINDOW_BARS - 1);
        let end_of = |last: usize| bar_starts.get(last).copied().unwrap_or(steps);
        let start = bar_starts[first - 1];
        while last > first && end_of(last) - start > WINDOW_STEPS as u32 {
            last -= 1;
        }
        // One bar longer than a window (a 9/1 bar, say) is cut to the window.
        let span = start..end_of(last).min(start + WINDOW_STEPS as u32);
        let window_start = window_around(bar_starts, &span, steps);
        Some(ReworkPlan {
            bars: (first, last),
            span,
            window_start,
        })
    }

    /// The span's steps within the model window.
    pub fn span_in_window(&self) -> Range<usize> {
        (self.span.start - self.window_start) as usize..(self.span.end - self.window_start) as usize
    }

    /// The model window of `piece`.
    pub fn window(&self, piece: &Roll) -> Roll {
        piece.window(self.window_start as usize, WINDOW_STEPS)
    }

    /// `piece` with the span replaced by what `take` (a window the model wrote) plays there.
    pub fn put_back(&self, piece: &[Note], take: &Roll) -> Vec<Note> {
        splice_window(piece, take, self.window_start, self.span.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bars(n: u32, per: u32) -> Vec<u32> {
        (0..n).map(|b| b * per).collect()
    }

    #[test]
    fn a_plan_keeps_to_the_piece_and_to_one_window() {
        let sixteen = bars(16, 16);
        let plan = ReworkPlan::new(&sixteen, 256, (11, 10)).unwrap();
        assert_eq!(plan.bars, (10, 11));
        assert_eq!(plan.span, 144..176);
        assert_eq!(plan.window_start, 96);
        assert_eq!(plan.span_in_window(), 48..80);
        // More than eight bars: the first eight from the first asked for.
        let plan = ReworkPlan::new(&sixteen, 256, (3, 14)).unwrap();
        assert_eq!((plan.bars, plan.span.clone()), ((3, 10), 32..160));
        assert_eq!(plan.window_start, 32);
        // Bars past the end: the last bar.
        let plan = ReworkPlan::new(&sixteen, 256, (20, 30)).unwrap();
        assert_eq!((plan.bars, plan.span), ((16, 16), 240..256));
        // 5/4 bars (20 steps): six of them fill a window, not eight.
        let plan = ReworkPlan::new(&bars(12, 20), 240, (1, 8)).unwrap();
        assert_eq!((plan.bars, plan.span), ((1, 6), 0..120));
        assert!(ReworkPlan::new(&[], 0, (1, 2)).is_none());
    }

    #[test]
    fn an_edit_draws_each_window_at_its_place_and_keeps_the_windows_written() {
        let given = vec![Note::new(60, 0, 16, 30)];
        let mut job = Job::Edit(EditJob::new(
            EditKind::Continue { from: 1, bars: 12 },
            256,
            given.clone(),
            bars(16, 16),
            Some(90.0),
        ));
        let window = |pitch: u8| Roll::from_notes(&[Note::new(pitch, 70, 80, 100)], 128);
        let Job::Edit(edit) = &mut job else {
            unreachable!()
        };
        edit.step(0, 64, &window(70));
        // The next window starts at step 160: the first one's note stays in the picture.
        edit.step(1, 160, &window(72));
        let Job::Edit(edit) = &job else {
            unreachable!()
        };
        // (A roll has no velocities: the window's notes come at the default.)
        assert_eq!(
            edit.shown,
            vec![Note::new(60, 0, 16, 30), Note::new(70, 134, 144, 80)]
        );
        let image = job.preview_image(&window(72), None, 160, 1);
        assert_eq!(image.steps, 256);
        let drawn = |pitch: usize, step: usize| image.texels[pitch * 256 + step][0] != 0;
        assert!(
            drawn(72, 230) && !drawn(72, 70),
            "at its place in the piece"
        );
        assert!(drawn(70, 134) && drawn(60, 0), "what was there stays");
    }

    #[test]
    fn putting_a_window_back_changes_only_the_span() {
        let piece = vec![
            Note::new(60, 0, 16, 30),
            Note::new(62, 140, 150, 90),
            Note::new(64, 150, 170, 100),
            Note::new(65, 176, 192, 110),
        ];
        let plan = ReworkPlan::new(&bars(16, 16), 256, (10, 11)).unwrap();
        // The window starts at step 96: a window note at 50 is piece step 146.
        let take = Roll::from_notes(&[Note::new(70, 50, 90, 80), Note::new(71, 0, 4, 80)], 128);
        let notes = plan.put_back(&piece, &take);
        assert_eq!(
            notes,
            vec![
                Note::new(60, 0, 16, 30),
                Note::new(62, 140, 144, 90),
                Note::new(70, 146, 176, 80),
                Note::new(65, 176, 192, 110),
            ]
        );
    }
}
