//! The piano-roll widget: view state (zoom, scroll), input handling, and drawing through the
//! WGSL shader in `shaders/roll.wgsl` as an egui-wgpu paint callback. Without a wgpu renderer
//! (a test harness with no GPU) the same picture is drawn coarsely with egui shapes instead.

use std::sync::Arc;

use eframe::egui_wgpu::{self, CallbackResources, CallbackTrait, ScreenDescriptor};
use eframe::wgpu;
use egui::{Align2, Color32, FontId, Pos2, Rect, Response, Sense, Stroke, Ui, Vec2};

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

/// A roll as the shader reads it: one byte per (step, pitch), row-major by pitch.
/// Bit 0: a note sounds; bit 1: a note starts.
#[derive(Debug)]
pub struct RollImage {
    pub cells: Vec<u8>,
    pub steps: usize,
    /// Changes whenever the picture does, so the GPU copy is refreshed only then.
    pub version: u64,
    pub pitch_range: Option<(u8, u8)>,
}

impl RollImage {
    pub fn new(roll: &Roll, version: u64) -> RollImage {
        let steps = roll.steps();
        let mut cells = vec![0u8; steps * PITCHES];
        for pitch in 0..PITCHES {
            for step in 0..steps {
                cells[pitch * steps + step] =
                    u8::from(roll.sustain(pitch, step)) | (u8::from(roll.onset(pitch, step)) << 1);
            }
        }
        RollImage {
            cells,
            steps,
            version,
            pitch_range: roll.pitch_range(),
        }
    }

    fn cell(&self, step: usize, pitch: usize) -> u8 {
        self.cells[pitch * self.steps + step]
    }
}

/// What part of the roll is on screen. Plain data: the app persists nothing of it, and a new
/// roll fits itself into view once.
#[derive(Debug, Clone, PartialEq)]
pub struct RollView {
    pub first_step: f32,
    pub steps_visible: f32,
    pub low_pitch: f32,
    pub pitches_visible: f32,
    fitted: Option<usize>,
}

impl Default for RollView {
    fn default() -> Self {
        RollView {
            first_step: 0.0,
            steps_visible: 128.0,
            low_pitch: 36.0,
            pitches_visible: 60.0,
            fitted: None,
        }
    }
}

impl RollView {
    /// Shows the whole roll and the pitches it uses.
    pub fn fit(&mut self, image: &RollImage) {
        self.first_step = 0.0;
        self.steps_visible = (image.steps as f32).max(MIN_STEPS);
        if let Some((low, high)) = image.pitch_range {
            let span =
                (f32::from(high) - f32::from(low) + 1.0 + 2.0 * FIT_MARGIN).max(FIT_MIN_PITCHES);
            let centre = (f32::from(low) + f32::from(high) + 1.0) / 2.0;
            self.pitches_visible = span.min(PITCHES as f32);
            self.low_pitch = centre - span / 2.0;
        }
        self.clamp();
    }

    fn clamp(&mut self) {
        self.pitches_visible = self.pitches_visible.clamp(MIN_PITCHES, PITCHES as f32);
        self.low_pitch = self
            .low_pitch
            .clamp(0.0, PITCHES as f32 - self.pitches_visible);
        self.steps_visible = self.steps_visible.clamp(MIN_STEPS, 4096.0);
        self.first_step = self.first_step.clamp(-self.steps_visible * 0.5, 4096.0);
    }

    /// Zooms time by `factor` (> 1 zooms in) keeping `at_step` under the pointer.
    pub fn zoom_time(&mut self, factor: f32, at_step: f32) {
        let new = (self.steps_visible / factor).clamp(MIN_STEPS, 4096.0);
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

    /// Draws `image` (or an empty grid) with the playhead at `playhead` steps, and handles
    /// wheel (scroll), Ctrl+wheel (zoom time), Alt+wheel (zoom pitch), drag (pan) and
    /// double-click (fit).
    pub fn show(
        &mut self,
        ui: &mut Ui,
        image: Option<&Arc<RollImage>>,
        playhead: Option<f32>,
    ) -> Response {
        let (rect, response) = ui.allocate_exact_size(ui.available_size(), Sense::click_and_drag());
        if let Some(image) = image
            && self.fitted != Some(image.steps)
        {
            self.fit(image);
            self.fitted = Some(image.steps);
        }
        self.handle_input(ui, &response, rect, image);

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
        self.paint_labels(&painter, rect);
        response
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

    fn uniforms(
        &self,
        rect: Rect,
        pixels_per_point: f32,
        image: Option<&Arc<RollImage>>,
        playhead: Option<f32>,
    ) -> [f32; 12] {
        [
            rect.width() * pixels_per_point,
            rect.height() * pixels_per_point,
            KEYS_WIDTH * pixels_per_point,
            playhead.unwrap_or(-1.0),
            self.first_step,
            self.steps_visible,
            self.low_pitch,
            self.pitches_visible,
            image.map_or(0.0, |i| i.steps as f32),
            STEPS_PER_BEAT as f32,
            STEPS_PER_BAR as f32,
            0.0, // srgb_target: filled in by prepare, which knows the target format
        ]
    }

    /// Octave names on the keys and bar numbers along the top: text the shader cannot draw.
    fn paint_labels(&self, painter: &egui::Painter, rect: Rect) {
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
        let bar_width = (rect.width() - KEYS_WIDTH) / self.steps_visible * STEPS_PER_BAR as f32;
        if bar_width >= 24.0 {
            let first_bar = (self.first_step / STEPS_PER_BAR as f32).floor().max(0.0) as usize;
            let last_bar = ((self.first_step + self.steps_visible) / STEPS_PER_BAR as f32) as usize;
            for bar in first_bar..=last_bar {
                let x = self.x_of(rect, (bar * STEPS_PER_BAR) as f32);
                if x >= rect.left() + KEYS_WIDTH {
                    painter.text(
                        Pos2::new(x + 3.0, rect.top() + 2.0),
                        Align2::LEFT_TOP,
                        format!("{}", bar + 1),
                        font.clone(),
                        Color32::from_gray(170),
                    );
                }
            }
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
            for pitch in 0..PITCHES {
                let mut start = None;
                for step in 0..=image.steps {
                    let c = if step < image.steps {
                        image.cell(step, pitch)
                    } else {
                        0
                    };
                    let ends = c & 1 == 0 || c & 2 != 0;
                    if let Some(s) = start
                        && ends
                    {
                        let r = Rect::from_x_y_ranges(
                            self.x_of(rect, s as f32)..=self.x_of(rect, step as f32),
                            self.y_of(rect, pitch as f32 + 1.0)..=self.y_of(rect, pitch as f32),
                        );
                        painter.rect_filled(r.intersect(rect), 1.0, fill);
                        start = None;
                    }
                    if c & 1 != 0 && start.is_none() {
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

const UNIFORM_BYTES: u64 = 12 * 4;

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

    /// Makes the bound texture hold `image` (an empty one-step roll when there is none).
    fn upload(&mut self, device: &wgpu::Device, queue: &wgpu::Queue, image: Option<&RollImage>) {
        let (steps, version) = image.map_or((1, u64::MAX), |i| (i.steps.max(1), i.version));
        if let Some((_, _, s, v)) = &self.bound
            && *s == steps
            && *v == version
        {
            return;
        }
        let size = wgpu::Extent3d {
            width: steps as u32,
            height: PITCHES as u32,
            depth_or_array_layers: 1,
        };
        if self.bound.as_ref().is_none_or(|(_, _, s, _)| *s != steps) {
            let texture = device.create_texture(&wgpu::TextureDescriptor {
                label: Some("diffroll roll cells"),
                size,
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: wgpu::TextureFormat::R8Uint,
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
        let empty = vec![0u8; steps * PITCHES];
        let data = image.map_or(&empty[..], |i| &i.cells[..]);
        if let Some((texture, _, _, v)) = &mut self.bound {
            queue.write_texture(
                wgpu::TexelCopyTextureInfo {
                    texture,
                    mip_level: 0,
                    origin: wgpu::Origin3d::ZERO,
                    aspect: wgpu::TextureAspect::All,
                },
                data,
                wgpu::TexelCopyBufferLayout {
                    offset: 0,
                    bytes_per_row: Some(steps as u32),
                    rows_per_image: Some(PITCHES as u32),
                },
                size,
            );
            *v = version;
        }
    }
}

struct RollCallback {
    uniforms: [f32; 12],
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
}
