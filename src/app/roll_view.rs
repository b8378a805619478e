//! The piano-roll widget: view state (zoom, scroll), input handling, and drawing through the
//! WGSL shader in `shaders/roll.wgsl` as an egui-wgpu paint callback. Without a wgpu renderer
//! (a test harness with no GPU) the same picture is drawn coarsely with egui shapes instead.

use std::ops::Range;
use std::sync::Arc;

use eframe::egui_wgpu::{self, CallbackResources, CallbackTrait, ScreenDescriptor};
use eframe::wgpu;
use egui::{Align2, Color32, FontId, Pos2, Rect, Response, Sense, Stroke, Ui, Vec2};

use crate::model::Fog;
use crate::roll::{PITCHES, Roll, STEPS_PER_BAR, STEPS_PER_BEAT};

const SHADER: &str = include_str!("../../shaders/roll.wgsl");
/// Keyboard width in points.
const KEYS_WIDTH: f32 = 44.0;
/// Fewest pitches and steps a view may show (zoomed fully in).
const MIN_PITCHES: f32 = 12.0;
const MIN_STEPS: f32 = 8.0;
/// Semitones of room above and below the notes when fitting the view.
const FIT_MARGIN: f32 = 3.0;
const FIT_MIN_PITCHES: f32 = 30.0;

/// Steps one row of texture chunks holds: longer rolls wrap into further bands of 128 rows,
/// so any piece the MIDI reader accepts fits a GPU texture's width and height limits.
pub const CHUNK_STEPS: usize = 2048;

/// Bits of a texel's first byte.
const SOUNDS: u8 = 1;
const STARTS: u8 = 2;
/// The cell shows the model's probabilities (bytes 1 and 2) instead of a decided note.
const FOG: u8 = 4;

/// A roll as the shader reads it: four bytes per (step, pitch), pitch-major. Byte 0: bit 0 a
/// note sounds, bit 1 a note starts, bit 2 the model's image is drawn here; byte 1 the
/// probability that a note sounds (0-255), byte 2 that one starts. Byte 3 places the bar
/// lines: in pitch 0's row the steps since the bar began, in pitch 1's the steps until the
/// next bar (or the roll's end), both at most 255: the shader finds the bar lines near a
/// pixel without searching for them (a loop over nearby steps, bounded by uniforms, made
/// Mesa's lavapipe compile a new shader variant and keep it on every frame drawn).
#[derive(Debug)]
pub struct RollImage {
    pub texels: Vec<[u8; 4]>,
    pub steps: usize,
    /// Changes whenever the picture does, so the GPU copy is refreshed only then.
    pub version: u64,
    pub pitch_range: Option<(u8, u8)>,
    /// Steps at which bars start (bar lines and numbers).
    pub bar_starts: Vec<u32>,
    fog_cells: usize,
}

impl RollImage {
    /// The roll's notes, with a bar every 16 steps.
    pub fn new(roll: &Roll, version: u64) -> RollImage {
        let steps = roll.steps();
        let mut texels = vec![[0u8; 4]; steps * PITCHES];
        for pitch in 0..PITCHES {
            for step in 0..steps {
                texels[pitch * steps + step][0] = (u8::from(roll.sustain(pitch, step)) * SOUNDS)
                    | (u8::from(roll.onset(pitch, step)) * STARTS);
            }
        }
        let mut image = RollImage {
            texels,
            steps,
            version,
            pitch_range: roll.pitch_range(),
            bar_starts: Vec::new(),
            fog_cells: 0,
        };
        image.set_bars(&crate::midi::bar_starts(&[], steps as u32));
        image
    }

    /// Bar lines at `bar_starts` instead of every 16 steps.
    pub fn with_bars(mut self, bar_starts: &[u32]) -> RollImage {
        self.set_bars(bar_starts);
        self
    }

    fn set_bars(&mut self, bar_starts: &[u32]) {
        let steps = self.steps;
        let mut starts: Vec<usize> = bar_starts
            .iter()
            .map(|&b| b as usize)
            .filter(|&b| b < steps)
            .collect();
        starts.sort_unstable();
        starts.push(steps);
        let mut next = 0;
        let mut began = None;
        for t in 0..steps {
            while starts[next] <= t {
                began = Some(starts[next]);
                next += 1;
            }
            let since = began.map_or(255, |b| (t - b).min(255));
            let until = (starts[next] - t).min(255);
            self.texels[t][3] = since as u8;
            self.texels[steps + t][3] = until as u8;
        }
        self.bar_starts = bar_starts.to_vec();
    }

    /// Draws the steps `span` of the roll from `fog` (whose step 0 is the roll's step
    /// `offset`) as the model's image: how likely a note sounds and starts in each cell.
    pub fn with_fog(mut self, fog: &Fog, offset: usize, span: Range<usize>) -> RollImage {
        let end = span.end.min(self.steps).min(offset + fog.steps());
        let start = span.start.max(offset);
        let byte = |p: f32| (p.clamp(0.0, 1.0) * 255.0).round() as u8;
        let mut low = PITCHES;
        let mut high = 0;
        for pitch in 0..PITCHES {
            for step in start..end {
                let texel = &mut self.texels[pitch * self.steps + step];
                let (sustain, onset) = (
                    fog.sustain(pitch, step - offset),
                    fog.onset(pitch, step - offset),
                );
                texel[0] |= FOG;
                texel[1] = byte(sustain);
                texel[2] = byte(onset);
                if sustain.max(onset) >= FOG_VISIBLE {
                    (low, high) = (low.min(pitch), high.max(pitch));
                }
            }
        }
        self.fog_cells += PITCHES * end.saturating_sub(start);
        if low <= high {
            let (l, h) = self.pitch_range.unwrap_or((low as u8, high as u8));
            self.pitch_range = Some((l.min(low as u8), h.max(high as u8)));
        }
        self
    }

    /// True where part of the picture is the model's image rather than decided notes.
    pub fn has_fog(&self) -> bool {
        self.fog_cells > 0
    }

    #[cfg(test)]
    fn cell(&self, step: usize, pitch: usize) -> u8 {
        self.texels[pitch * self.steps + step][0]
    }

    /// The texture's size for this roll: width and number of 128-row bands.
    fn texture_size(steps: usize) -> (usize, usize) {
        (
            steps.clamp(1, CHUNK_STEPS),
            steps.div_ceil(CHUNK_STEPS).max(1),
        )
    }
}

/// Probability from which the model's image counts as showing something (for fitting the
/// view to it).
const FOG_VISIBLE: f32 = 0.25;

/// What part of the roll is on screen. Plain data: the app persists nothing of it, and a new
/// roll fits itself into view once.
#[derive(Debug, Clone, PartialEq)]
pub struct RollView {
    pub first_step: f32,
    pub steps_visible: f32,
    pub low_pitch: f32,
    pub pitches_visible: f32,
    /// Steps of the roll shown (what scrolling may reach).
    pub content_steps: f32,
    fitted: Option<usize>,
}

impl Default for RollView {
    fn default() -> Self {
        RollView {
            first_step: 0.0,
            steps_visible: 128.0,
            low_pitch: 36.0,
            pitches_visible: 60.0,
            content_steps: 128.0,
            fitted: None,
        }
    }
}

/// Most steps a fitted view shows: longer pieces open on their first 16 bars and scroll.
pub const FIT_MAX_STEPS: f32 = 256.0;
/// Height of the scroll bar under a roll longer than the view, in points.
const SCROLLBAR_HEIGHT: f32 = 8.0;

impl RollView {
    /// Shows the start of the roll (all of it up to [`FIT_MAX_STEPS`]) and the pitches it
    /// uses.
    pub fn fit(&mut self, image: &RollImage) {
        self.content_steps = image.steps as f32;
        self.first_step = 0.0;
        self.steps_visible = (image.steps as f32).clamp(MIN_STEPS, FIT_MAX_STEPS);
        if let Some((low, high)) = image.pitch_range {
            let span =
                (f32::from(high) - f32::from(low) + 1.0 + 2.0 * FIT_MARGIN).max(FIT_MIN_PITCHES);
            let centre = (f32::from(low) + f32::from(high) + 1.0) / 2.0;
            self.pitches_visible = span.min(PITCHES as f32);
            self.low_pitch = centre - span / 2.0;
        }
        self.clamp();
    }

    /// Most steps the view may show: the whole roll and a little beyond.
    fn max_visible(&self) -> f32 {
        self.content_steps.max(128.0) * 1.25
    }

    fn clamp(&mut self) {
        self.pitches_visible = self.pitches_visible.clamp(MIN_PITCHES, PITCHES as f32);
        self.low_pitch = self
            .low_pitch
            .clamp(0.0, PITCHES as f32 - self.pitches_visible);
        self.steps_visible = self.steps_visible.clamp(MIN_STEPS, self.max_visible());
        let half = self.steps_visible * 0.5;
        self.first_step = self
            .first_step
            .clamp(-half, (self.content_steps - half).max(-half));
    }

    /// Zooms time by `factor` (> 1 zooms in) keeping `at_step` under the pointer.
    pub fn zoom_time(&mut self, factor: f32, at_step: f32) {
        let new = (self.steps_visible / factor).clamp(MIN_STEPS, self.max_visible());
        self.first_step = at_step - (at_step - self.first_step) * new / self.steps_visible;
        self.steps_visible = new;
        self.clamp();
    }

    /// Zooms pitch by `factor` keeping `at_pitch` under the pointer.
    pub fn zoom_pitch(&mut self, factor: f32, at_pitch: f32) {
        let new = (self.pitches_visible / factor).clamp(MIN_PITCHES, PITCHES as f32);
        self.low_pitch = at_pitch - (at_pitch - self.low_pitch) * new / self.pitches_visible;
        self.pitches_visible = new;
        self.clamp();
    }

    /// Moves the view by a pointer or wheel delta of `delta` points over a widget of `size`.
    pub fn pan(&mut self, delta: Vec2, size: Vec2) {
        let grid_width = (size.x - KEYS_WIDTH).max(1.0);
        self.first_step -= delta.x * self.steps_visible / grid_width;
        self.low_pitch += delta.y * self.pitches_visible / size.y.max(1.0);
        self.clamp();
    }

    /// Scrolls as little as brings the steps `span` into view (its start, where the view is
    /// narrower than the span).
    pub fn follow(&mut self, span: Range<f32>) {
        let end = self.first_step + self.steps_visible;
        if span.start < self.first_step {
            self.scroll_to(span.start);
        } else if span.end > end {
            self.scroll_to((span.end - self.steps_visible).min(span.start));
        }
    }

    /// Puts `step` at the left edge (as far as the roll allows).
    pub fn scroll_to(&mut self, step: f32) {
        self.first_step = step;
        self.clamp();
    }

    /// Draws `image` (or an empty grid) with the playhead at `playhead` steps, and handles
    /// wheel (scroll; Shift+wheel scrolls in time), Ctrl+wheel (zoom time), Alt+wheel (zoom
    /// pitch), drag (pan), the scroll bar under a long roll, and double-click (fit).
    pub fn show(
        &mut self,
        ui: &mut Ui,
        image: Option<&Arc<RollImage>>,
        playhead: Option<f32>,
    ) -> Response {
        let (rect, response) = ui.allocate_exact_size(ui.available_size(), Sense::click_and_drag());
        if let Some(image) = image {
            self.content_steps = image.steps as f32;
            if self.fitted != Some(image.steps) {
                self.fit(image);
                self.fitted = Some(image.steps);
            }
        }
        self.handle_input(ui, &response, rect, image);
        let scrollbar = self.scrollbar(ui, rect, response.id);

        let painter = ui.painter_at(rect);
        let gpu = ui
            .ctx()
            .data(|d| d.get_temp::<bool>(egui::Id::unique(GPU_READY_ID)))
            .unwrap_or(false);
        if gpu {
            let callback = RollCallback {
                uniforms: self.uniforms(rect, ui.ctx().pixels_per_point(), image, playhead),
                image: image.cloned(),
            };
            painter.add(egui_wgpu::Callback::new_paint_callback(rect, callback));
        } else {
            self.paint_with_shapes(&painter, rect, image, playhead);
        }
        self.paint_labels(&painter, rect, image);
        if let Some((track, thumb)) = scrollbar {
            painter.rect_filled(track, 3.0, Color32::from_black_alpha(90));
            painter.rect_filled(thumb, 3.0, Color32::from_gray(150));
        }
        response
    }

    /// The scroll bar along the bottom of the grid when the roll is longer than the view:
    /// dragging its thumb or clicking its track moves through the piece. Returns the track
    /// and thumb to draw.
    fn scrollbar(&mut self, ui: &Ui, rect: Rect, id: egui::Id) -> Option<(Rect, Rect)> {
        if self.content_steps <= self.steps_visible {
            return None;
        }
        let track = Rect::from_min_max(
            Pos2::new(
                rect.left() + KEYS_WIDTH + 2.0,
                rect.bottom() - SCROLLBAR_HEIGHT - 2.0,
            ),
            Pos2::new(rect.right() - 2.0, rect.bottom() - 2.0),
        );
        let response = ui.interact(track, id.with("scroll bar"), Sense::click_and_drag());
        let per_point = self.content_steps / track.width().max(1.0);
        if response.dragged() {
            self.first_step += response.drag_delta().x * per_point;
            self.clamp();
        } else if response.clicked()
            && let Some(pos) = response.interact_pointer_pos()
        {
            let step = (pos.x - track.left()) * per_point;
            self.scroll_to(step - self.steps_visible * 0.5);
        }
        let x = |step: f32| track.left() + (step / per_point).clamp(0.0, track.width());
        let thumb = Rect::from_x_y_ranges(
            x(self.first_step)
                ..=x(self.first_step + self.steps_visible).max(x(self.first_step) + 6.0),
            track.y_range(),
        );
        Some((track, thumb))
    }

    fn handle_input(
        &mut self,
        ui: &Ui,
        response: &Response,
        rect: Rect,
        image: Option<&Arc<RollImage>>,
    ) {
        if response.double_clicked()
            && let Some(image) = image
        {
            self.fit(image);
        }
        if response.dragged() {
            self.pan(response.drag_delta(), rect.size());
        }
        if !response.hovered() {
            return;
        }
        let (scroll, zoom, modifiers, pointer) = ui.input(|i| {
            (
                i.smooth_scroll_delta,
                i.zoom_delta(),
                i.modifiers,
                i.pointer.hover_pos(),
            )
        });
        let pointer = pointer.unwrap_or(rect.center());
        if zoom != 1.0 {
            if modifiers.alt {
                let pitch = self.pitch_at(rect, pointer.y);
                self.zoom_pitch(zoom, pitch);
            } else {
                let step = self.step_at(rect, pointer.x);
                self.zoom_time(zoom, step);
            }
        } else if scroll != Vec2::ZERO {
            self.pan(scroll, rect.size());
        }
    }

    fn step_at(&self, rect: Rect, x: f32) -> f32 {
        let grid = (rect.width() - KEYS_WIDTH).max(1.0);
        self.first_step + (x - rect.left() - KEYS_WIDTH) / grid * self.steps_visible
    }

    fn pitch_at(&self, rect: Rect, y: f32) -> f32 {
        self.low_pitch + (rect.bottom() - y) / rect.height().max(1.0) * self.pitches_visible
    }

    fn x_of(&self, rect: Rect, step: f32) -> f32 {
        let grid = (rect.width() - KEYS_WIDTH).max(1.0);
        rect.left() + KEYS_WIDTH + (step - self.first_step) / self.steps_visible * grid
    }

    fn y_of(&self, rect: Rect, pitch: f32) -> f32 {
        rect.bottom() - (pitch - self.low_pitch) / self.pitches_visible * rect.height()
    }

    /// The steps at least partly on screen, within `0..steps`.
    fn visible_steps(&self, steps: usize) -> Range<usize> {
        let first = self.first_step.floor().max(0.0) as usize;
        let last = ((self.first_step + self.steps_visible).ceil().max(0.0) as usize).min(steps);
        first.min(last)..last
    }

    fn uniforms(
        &self,
        rect: Rect,
        pixels_per_point: f32,
        image: Option<&Arc<RollImage>>,
        playhead: Option<f32>,
    ) -> [f32; UNIFORM_FLOATS] {
        let steps = image.map_or(0, |i| i.steps);
        [
            rect.width() * pixels_per_point,
            rect.height() * pixels_per_point,
            KEYS_WIDTH * pixels_per_point,
            playhead.unwrap_or(-1.0),
            self.first_step,
            self.steps_visible,
            self.low_pitch,
            self.pitches_visible,
            steps as f32,
            STEPS_PER_BEAT as f32,
            STEPS_PER_BAR as f32,
            0.0, // srgb_target: filled in by prepare, which knows the target format
            RollImage::texture_size(steps).0 as f32,
            0.0,
            0.0,
            0.0,
        ]
    }

    /// Octave names on the keys and bar numbers along the top: text the shader cannot draw.
    fn paint_labels(&self, painter: &egui::Painter, rect: Rect, image: Option<&Arc<RollImage>>) {
        let font = FontId::proportional(10.0);
        let row = rect.height() / self.pitches_visible;
        if row >= 5.0 {
            let first = (self.low_pitch.floor() as i32).max(0);
            let last = ((self.low_pitch + self.pitches_visible).ceil() as i32).min(127);
            for pitch in (first..=last).filter(|p| p % 12 == 0) {
                let y = self.y_of(rect, pitch as f32 + 0.5);
                painter.text(
                    Pos2::new(rect.left() + KEYS_WIDTH - 3.0, y),
                    Align2::RIGHT_CENTER,
                    format!("C{}", pitch / 12 - 1),
                    font.clone(),
                    Color32::from_gray(60),
                );
            }
        }
        let every_bar;
        let bar_starts: &[u32] = match image {
            Some(image) => &image.bar_starts,
            None => {
                let last = ((self.first_step + self.steps_visible).max(0.0) as u32)
                    .div_ceil(STEPS_PER_BAR as u32);
                every_bar = crate::midi::bar_starts(&[], last * STEPS_PER_BAR as u32);
                &every_bar
            }
        };
        // Numbers at least this far apart; bars too narrow for one each get every few.
        const GAP: f32 = 24.0;
        let visible = self.first_step..self.first_step + self.steps_visible;
        let from = bar_starts.partition_point(|&b| (b as f32) < visible.start);
        let mut last_x = f32::NEG_INFINITY;
        for (bar, &start) in bar_starts.iter().enumerate().skip(from) {
            if start as f32 > visible.end {
                break;
            }
            let x = self.x_of(rect, start as f32);
            if x < rect.left() + KEYS_WIDTH || x - last_x < GAP {
                continue;
            }
            last_x = x;
            painter.text(
                Pos2::new(x + 3.0, rect.top() + 2.0),
                Align2::LEFT_TOP,
                format!("{}", bar + 1),
                font.clone(),
                Color32::from_gray(170),
            );
        }
    }

    fn paint_with_shapes(
        &self,
        painter: &egui::Painter,
        rect: Rect,
        image: Option<&Arc<RollImage>>,
        playhead: Option<f32>,
    ) {
        painter.rect_filled(rect, 0.0, Color32::from_rgb(42, 45, 50));
        let keys = Rect::from_min_size(rect.min, Vec2::new(KEYS_WIDTH, rect.height()));
        painter.rect_filled(keys, 0.0, Color32::from_gray(230));
        if let Some(image) = image {
            let fill = Color32::from_rgb(97, 184, 250);
            let steps = self.visible_steps(image.steps);
            let low = (self.low_pitch.floor().max(0.0) as usize).min(PITCHES);
            let high = ((self.low_pitch + self.pitches_visible).ceil() as usize).min(PITCHES);
            let cell_rect = |from: usize, to: usize, pitch: usize| {
                Rect::from_x_y_ranges(
                    self.x_of(rect, from as f32)..=self.x_of(rect, to as f32),
                    self.y_of(rect, pitch as f32 + 1.0)..=self.y_of(rect, pitch as f32),
                )
                .intersect(rect)
            };
            for pitch in low..high {
                let mut start = None;
                for step in steps.start..=steps.end {
                    let texel = image
                        .texels
                        .get(pitch * image.steps + step)
                        .filter(|_| step < steps.end);
                    let c = texel.map_or(0, |t| t[0]);
                    if c & FOG != 0 {
                        let sustain = texel.map_or(0, |t| t[1]);
                        if sustain >= 12 {
                            painter.rect_filled(
                                cell_rect(step, step + 1, pitch),
                                0.0,
                                fill.gamma_multiply(f32::from(sustain) / 255.0),
                            );
                        }
                    }
                    let c = if c & FOG != 0 { 0 } else { c };
                    let ends = c & SOUNDS == 0 || c & STARTS != 0;
                    if let Some(s) = start
                        && ends
                    {
                        painter.rect_filled(cell_rect(s, step, pitch), 1.0, fill);
                        start = None;
                    }
                    if c & SOUNDS != 0 && start.is_none() {
                        start = Some(step);
                    }
                }
            }
        }
        if let Some(step) = playhead {
            let x = self.x_of(rect, step);
            painter.vline(
                x,
                rect.y_range(),
                Stroke::new(1.0, Color32::from_rgb(255, 148, 51)),
            );
        }
    }
}

/// Set in egui's temporary data once the shader pipeline is installed.
const GPU_READY_ID: &str = "diffroll.roll_view.gpu";

/// Creates the shader pipeline in the renderer's callback resources. Returns false (and the
/// widget falls back to egui shapes) when there is no wgpu renderer.
pub fn install(ctx: &egui::Context, render_state: Option<&egui_wgpu::RenderState>) -> bool {
    let Some(rs) = render_state else {
        return false;
    };
    let resources = RollResources::new(&rs.device, rs.target_format);
    rs.renderer.write().callback_resources.insert(resources);
    ctx.data_mut(|d| d.insert_temp(egui::Id::unique(GPU_READY_ID), true));
    true
}

struct RollResources {
    pipeline: wgpu::RenderPipeline,
    layout: wgpu::BindGroupLayout,
    uniforms: wgpu::Buffer,
    srgb_target: bool,
    /// The roll's texture and its bind group, and the image version in it.
    bound: Option<(wgpu::Texture, wgpu::BindGroup, usize, u64)>,
}

const UNIFORM_FLOATS: usize = 16;
const UNIFORM_BYTES: u64 = UNIFORM_FLOATS as u64 * 4;

impl RollResources {
    fn new(device: &wgpu::Device, format: wgpu::TextureFormat) -> RollResources {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("diffroll roll shader"),
            source: wgpu::ShaderSource::Wgsl(SHADER.into()),
        });
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("diffroll roll bind group layout"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: false,
                        min_binding_size: std::num::NonZeroU64::new(UNIFORM_BYTES),
                    },
                    count: None,
                },
                wgpu::BindGroupLayoutEntry {
                    binding: 1,
                    visibility: wgpu::ShaderStages::FRAGMENT,
                    ty: wgpu::BindingType::Texture {
                        sample_type: wgpu::TextureSampleType::Uint,
                        view_dimension: wgpu::TextureViewDimension::D2,
                        multisampled: false,
                    },
                    count: None,
                },
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("diffroll roll pipeline layout"),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("diffroll roll pipeline"),
            layout: Some(&pipeline_layout),
            vertex: wgpu::VertexState {
                module: &module,
                entry_point: Some("vs_main"),
                compilation_options: Default::default(),
                buffers: &[],
            },
            primitive: wgpu::PrimitiveState::default(),
            depth_stencil: None,
            multisample: wgpu::MultisampleState::default(),
            fragment: Some(wgpu::FragmentState {
                module: &module,
                entry_point: Some("fs_main"),
                compilation_options: Default::default(),
                targets: &[Some(wgpu::ColorTargetState {
                    format,
                    blend: None,
                    write_mask: wgpu::ColorWrites::ALL,
                })],
            }),
            multiview_mask: None,
            cache: None,
        });
        let uniforms = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("diffroll roll uniforms"),
            size: UNIFORM_BYTES,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        RollResources {
            pipeline,
            layout,
            uniforms,
            srgb_target: format.is_srgb(),
            bound: None,
        }
    }

    /// Makes the bound texture hold `image` (an empty one-step roll when there is none): steps
    /// in bands of [`CHUNK_STEPS`], each band 128 rows of pitches below the one before.
    fn upload(&mut self, device: &wgpu::Device, queue: &wgpu::Queue, image: Option<&RollImage>) {
        let (steps, version) = image.map_or((1, u64::MAX), |i| (i.steps.max(1), i.version));
        if let Some((_, _, s, v)) = &self.bound
            && *s == steps
            && *v == version
        {
            return;
        }
        let (width, bands) = RollImage::texture_size(steps);
        if self.bound.as_ref().is_none_or(|(_, _, s, _)| *s != steps) {
            let texture = device.create_texture(&wgpu::TextureDescriptor {
                label: Some("diffroll roll cells"),
                size: wgpu::Extent3d {
                    width: width as u32,
                    height: (bands * PITCHES) as u32,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: wgpu::TextureFormat::Rgba8Uint,
                usage: wgpu::TextureUsages::TEXTURE_BINDING | wgpu::TextureUsages::COPY_DST,
                view_formats: &[],
            });
            let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
            let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("diffroll roll bind group"),
                layout: &self.layout,
                entries: &[
                    wgpu::BindGroupEntry {
                        binding: 0,
                        resource: self.uniforms.as_entire_binding(),
                    },
                    wgpu::BindGroupEntry {
                        binding: 1,
                        resource: wgpu::BindingResource::TextureView(&view),
                    },
                ],
            });
            self.bound = Some((texture, bind_group, steps, u64::MAX - 1));
        }
        let empty = vec![[0u8; 4]; steps * PITCHES];
        let data = image
            .filter(|i| i.texels.len() == steps * PITCHES)
            .map_or(&empty[..], |i| &i.texels[..])
            .as_flattened();
        if let Some((texture, _, _, v)) = &mut self.bound {
            for band in 0..bands {
                let first = band * CHUNK_STEPS;
                queue.write_texture(
                    wgpu::TexelCopyTextureInfo {
                        texture,
                        mip_level: 0,
                        origin: wgpu::Origin3d {
                            x: 0,
                            y: (band * PITCHES) as u32,
                            z: 0,
                        },
                        aspect: wgpu::TextureAspect::All,
                    },
                    data,
                    wgpu::TexelCopyBufferLayout {
                        offset: (first * 4) as u64,
                        bytes_per_row: Some((steps * 4) as u32),
                        rows_per_image: Some(PITCHES as u32),
                    },
                    wgpu::Extent3d {
                        width: (steps - first).min(CHUNK_STEPS) as u32,
                        height: PITCHES as u32,
                        depth_or_array_layers: 1,
                    },
                );
            }
            *v = version;
        }
    }
}

struct RollCallback {
    uniforms: [f32; UNIFORM_FLOATS],
    image: Option<Arc<RollImage>>,
}

impl CallbackTrait for RollCallback {
    fn prepare(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        _screen: &ScreenDescriptor,
        _encoder: &mut wgpu::CommandEncoder,
        resources: &mut CallbackResources,
    ) -> Vec<wgpu::CommandBuffer> {
        let Some(res) = resources.get_mut::<RollResources>() else {
            return Vec::new();
        };
        let mut uniforms = self.uniforms;
        uniforms[11] = if res.srgb_target { 1.0 } else { 0.0 };
        let bytes: Vec<u8> = uniforms.iter().flat_map(|v| v.to_le_bytes()).collect();
        queue.write_buffer(&res.uniforms, 0, &bytes);
        res.upload(device, queue, self.image.as_deref());
        Vec::new()
    }

    fn paint(
        &self,
        _info: egui::PaintCallbackInfo,
        render_pass: &mut wgpu::RenderPass<'static>,
        resources: &CallbackResources,
    ) {
        let Some(res) = resources.get::<RollResources>() else {
            return;
        };
        let Some((_, bind_group, _, _)) = &res.bound else {
            return;
        };
        render_pass.set_pipeline(&res.pipeline);
        render_pass.set_bind_group(0, bind_group, &[]);
        render_pass.draw(0..3, 0..1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::roll::Note;

    #[test]
    fn image_marks_onsets_and_sustain() {
        let roll = Roll::from_notes(&[Note::new(60, 2, 5, 80)], 16);
        let image = RollImage::new(&roll, 1);
        assert_eq!(image.cell(1, 60), 0);
        assert_eq!(image.cell(2, 60), 3);
        assert_eq!(image.cell(4, 60), 1);
        assert_eq!(image.cell(5, 60), 0);
        assert_eq!(image.pitch_range, Some((60, 60)));
    }

    #[test]
    fn zoom_keeps_the_point_under_the_pointer() {
        let mut view = RollView::default();
        view.zoom_time(2.0, 32.0);
        assert_eq!(view.steps_visible, 64.0);
        assert_eq!(view.first_step, 16.0);
        view.zoom_pitch(2.0, view.low_pitch + 10.0);
        assert_eq!(view.pitches_visible, 30.0);
    }

    #[test]
    fn fit_shows_all_notes_and_clamps() {
        let roll = Roll::from_notes(&[Note::new(0, 0, 4, 80), Note::new(127, 0, 4, 80)], 128);
        let mut view = RollView::default();
        view.fit(&RollImage::new(&roll, 1));
        assert_eq!(view.low_pitch, 0.0);
        assert_eq!(view.pitches_visible, 128.0);
        view.pan(Vec2::new(0.0, -1000.0), Vec2::new(800.0, 400.0));
        assert_eq!(view.low_pitch, 0.0);
    }

    #[test]
    fn bars_follow_the_given_starts() {
        let roll = Roll::new(40);
        let image = RollImage::new(&roll, 1);
        let bars = |image: &RollImage| -> Vec<usize> {
            (0..image.steps)
                .filter(|&t| image.texels[t][3] == 0)
                .collect()
        };
        assert_eq!(bars(&image), vec![0, 16, 32]);
        // Steps since the bar began, and until the next bar or the end.
        assert_eq!((image.texels[20][3], image.texels[40 + 20][3]), (4, 12));
        assert_eq!((image.texels[39][3], image.texels[40 + 39][3]), (7, 1));
        let image = image.with_bars(&[0, 12, 24, 36]);
        assert_eq!(bars(&image), vec![0, 12, 24, 36]);
        assert_eq!(image.bar_starts, vec![0, 12, 24, 36]);
        assert_eq!(image.texels[40 + 13][3], 11);
    }

    #[test]
    fn fog_shows_probabilities_in_its_span_and_notes_elsewhere() {
        let steps = 128;
        // Logits: note at pitch 64 sounding everywhere (sustain 0.88), starting nowhere.
        let mut logits = vec![-20.0f32; 2 * PITCHES * steps];
        for t in 0..steps {
            logits[PITCHES * steps + 64 * steps + t] = 2.0;
        }
        logits[64 * steps + 40] = 0.0;
        let fog = Fog::from_logits(&logits, steps);
        let roll = Roll::from_notes(&[Note::new(60, 0, 200, 80)], 256);
        let image = RollImage::new(&roll, 1).with_fog(&fog, 100, 130..160);
        assert!(image.has_fog());
        let texel = |step: usize, pitch: usize| image.texels[pitch * 256 + step];
        // Outside the span: the notes, no fog.
        assert_eq!(texel(120, 60)[0], SOUNDS);
        assert_eq!(texel(120, 64), [0, 0, 0, 0]);
        // Inside: the probabilities of the fog's step (step 140 is the fog's 40).
        assert_eq!(texel(140, 64)[0] & FOG, FOG);
        assert_eq!(
            texel(140, 64)[1],
            (255.0f32 / (1.0 + (-2.0f32).exp())).round() as u8
        );
        assert_eq!(texel(140, 64)[2], 128);
        assert_eq!(texel(141, 64)[2], 0);
        assert_eq!(image.pitch_range, Some((60, 64)));
        assert!(!RollImage::new(&roll, 2).has_fog());
    }

    #[test]
    fn long_rolls_wrap_into_bands_of_the_texture() {
        assert_eq!(RollImage::texture_size(128), (128, 1));
        assert_eq!(RollImage::texture_size(0), (1, 1));
        assert_eq!(RollImage::texture_size(2048), (2048, 1));
        assert_eq!(RollImage::texture_size(2049), (2048, 2));
        // The longest piece the MIDI reader accepts fits an 8192-texel texture.
        let (w, bands) = RollImage::texture_size(crate::midi::MAX_STEPS as usize);
        assert!(w <= 8192 && bands * PITCHES <= 8192);
    }

    #[test]
    fn a_long_roll_scrolls_to_its_last_bar() {
        let roll = Roll::from_notes(&[Note::new(60, 1000, 1010, 80)], 1024);
        let mut view = RollView::default();
        view.fit(&RollImage::new(&roll, 1));
        assert_eq!((view.first_step, view.steps_visible), (0.0, FIT_MAX_STEPS));
        view.scroll_to(10_000.0);
        assert!(view.first_step + view.steps_visible >= 1024.0, "{view:?}");
        assert!(view.first_step < 1024.0);
        // Zoomed out, the whole piece fits.
        view.zoom_time(0.1, 0.0);
        assert!(view.steps_visible >= 1024.0);
    }
}
