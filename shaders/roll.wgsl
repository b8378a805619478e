// The piano roll: keyboard, grid, notes and playhead, drawn per pixel from a texture of cells.
// One texel per (step, pitch), rolls longer than `chunk_steps` wrapped into further bands of
// 128 rows. r: bit 0 = the note sounds here, bit 1 = a note starts here, bit 2 = draw the
// model's image here instead: g = probability that a note sounds, b = that one starts
// (0-255). a: in pitch 0's row the steps since the bar began, in pitch 1's until the next bar.
// Drawing per pixel keeps every frame the same cost however many notes there are, and lines
// stay one device pixel wide at any zoom.

struct View {
    // Widget size in device pixels.
    size: vec2<f32>,
    // Keyboard width in device pixels.
    keys_width: f32,
    // Playhead in steps; negative when stopped.
    playhead: f32,
    first_step: f32,
    steps_visible: f32,
    low_pitch: f32,
    pitches_visible: f32,
    roll_steps: f32,
    steps_per_beat: f32,
    steps_per_bar: f32,
    // 1 when the target stores sRGB (the shader then writes linear values).
    srgb_target: f32,
    // Steps in one band of the texture.
    chunk_steps: f32,
    _pad0: f32,
    _pad1: f32,
    _pad2: f32,
};

@group(0) @binding(0) var<uniform> view: View;
@group(0) @binding(1) var cells: texture_2d<u32>;

struct VertexOut {
    @builtin(position) position: vec4<f32>,
    @location(0) uv: vec2<f32>,
};

// One triangle that covers the viewport (egui sets the viewport to the widget's rectangle).
@vertex
fn vs_main(@builtin(vertex_index) index: u32) -> VertexOut {
    let uv = vec2<f32>(f32((index << 1u) & 2u), f32(index & 2u));
    var out: VertexOut;
    out.position = vec4<f32>(uv.x * 2.0 - 1.0, 1.0 - uv.y * 2.0, 0.0, 1.0);
    out.uv = uv;
    return out;
}

fn pitch_class(pitch: i32) -> i32 {
    return ((pitch % 12) + 12) % 12;
}

fn is_black(pitch: i32) -> bool {
    let c = pitch_class(pitch);
    return c == 1 || c == 3 || c == 6 || c == 8 || c == 10;
}

fn texel(step: i32, pitch: i32) -> vec4<u32> {
    if step < 0 || pitch < 0 || pitch > 127 || f32(step) >= view.roll_steps {
        return vec4<u32>(0u);
    }
    let chunk = max(i32(view.chunk_steps), 1);
    return textureLoad(cells, vec2<i32>(step % chunk, pitch + 128 * (step / chunk)), 0);
}

fn cell(step: i32, pitch: i32) -> u32 {
    return texel(step, pitch).r;
}

// Distance in pixels from `x` (in steps) to the nearest multiple of `every`.
fn line_distance(x: f32, every: f32, px_per_step: f32) -> f32 {
    return abs(x - round(x / every) * every) * px_per_step;
}

fn output(c: vec3<f32>) -> vec4<f32> {
    if view.srgb_target > 0.5 {
        return vec4<f32>(pow(c, vec3<f32>(2.2)), 1.0);
    }
    return vec4<f32>(c, 1.0);
}

@fragment
fn fs_main(in: VertexOut) -> @location(0) vec4<f32> {
    let px = in.uv * view.size;
    let px_per_pitch = view.size.y / view.pitches_visible;
    let pitch_f = view.low_pitch + (view.size.y - px.y) / px_per_pitch;
    let pitch = i32(floor(pitch_f));
    let row_px = fract(pitch_f) * px_per_pitch;

    if px.x < view.keys_width {
        var key = select(vec3<f32>(0.93, 0.93, 0.90), vec3<f32>(0.10, 0.10, 0.11), is_black(pitch));
        if row_px < 1.0 && !is_black(pitch) && !is_black(pitch - 1) {
            key = vec3<f32>(0.55, 0.55, 0.55);
        }
        if pitch_class(pitch) == 0 && row_px < 1.0 {
            key = vec3<f32>(0.35, 0.35, 0.38);
        }
        if view.keys_width - px.x < 1.0 {
            key = vec3<f32>(0.30, 0.30, 0.33);
        }
        return output(key);
    }

    let px_per_step = (view.size.x - view.keys_width) / view.steps_visible;
    let step_f = view.first_step + (px.x - view.keys_width) / px_per_step;
    let step = i32(floor(step_f));

    var c = select(vec3<f32>(0.165, 0.175, 0.195), vec3<f32>(0.125, 0.133, 0.150), is_black(pitch));
    if step_f < 0.0 || step_f >= view.roll_steps {
        c = c * 0.55;
    }
    if pitch_class(pitch) == 0 && row_px < 1.0 {
        c = vec3<f32>(0.27, 0.28, 0.31);
    }
    if px_per_step >= 8.0 && line_distance(step_f, 1.0, px_per_step) < 0.5 {
        c = mix(c, vec3<f32>(0.24, 0.25, 0.28), 0.5);
    }
    // Beat lines; bar lines a pixel either side of each bar start, from the steps since the
    // bar began and until the next (every `steps_per_bar` outside the roll). Lines closer than
    // a few pixels would only grey the grid. Chosen with `select`, not `if`: lavapipe
    // specialises a shader on uniforms that guard branches and leaks memory on every frame.
    let beat_line = px_per_step * view.steps_per_beat >= 4.0
        && line_distance(step_f, view.steps_per_beat, px_per_step) < 0.5;
    c = select(c, vec3<f32>(0.26, 0.27, 0.31), beat_line);
    let since = f32(texel(step, 0).a);
    let until = f32(texel(step, 1).a);
    let in_roll = step >= 0 && f32(step) < view.roll_steps;
    let to_own_bar = min(step_f - (f32(step) - since), f32(step) + until - step_f) * px_per_step;
    let to_bar = select(line_distance(step_f, view.steps_per_bar, px_per_step), to_own_bar, in_roll);
    let bar_line = px_per_step * view.steps_per_bar >= 6.0 && to_bar < 1.0;
    c = select(c, vec3<f32>(0.45, 0.47, 0.53), bar_line);

    let whole = texel(step, pitch);
    let here = whole.r;
    let from_left = fract(step_f) * px_per_step;
    if (here & 4u) != 0u {
        // The model's image while it denoises: brightness is how likely a note sounds, a pale
        // head how likely one starts. It sharpens into notes as the steps go by.
        let sustain = f32(whole.g) / 255.0;
        let onset = f32(whole.b) / 255.0;
        c = mix(c, vec3<f32>(0.38, 0.72, 0.98), smoothstep(0.0, 1.0, sustain));
        let head = onset * (1.0 - smoothstep(0.35, 0.7, from_left / max(px_per_step, 1.0)));
        c = mix(c, vec3<f32>(0.86, 0.95, 1.0), head);
    } else if (here & 3u) != 0u {
        let onset = (here & 2u) != 0u;
        let next = cell(step + 1, pitch);
        let continues = (next & 1u) != 0u && (next & 2u) == 0u;
        let to_right = (1.0 - fract(step_f)) * px_per_step;
        let to_edge = min(row_px, px_per_pitch - row_px);
        var note = vec3<f32>(0.38, 0.72, 0.98);
        if (here & 1u) == 0u {
            // An onset with nothing sounding: the model's half-formed note while denoising.
            note = vec3<f32>(0.62, 0.55, 0.90);
        }
        if onset && from_left < 4.0 {
            note = vec3<f32>(0.80, 0.93, 1.0);
        }
        if (onset && from_left < 1.0) || (!continues && to_right < 1.0) || to_edge < 1.0 {
            note = vec3<f32>(0.07, 0.20, 0.36);
        }
        c = note;
    }

    if view.playhead >= 0.0 && abs(step_f - view.playhead) * px_per_step < 1.0 {
        c = vec3<f32>(1.0, 0.58, 0.20);
    }
    return output(c);
}
