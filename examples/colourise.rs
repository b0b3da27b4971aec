//! `colourise`: a function that turns a grayscale image (PNG or JPEG on stdin) into a colour PNG (stdout).
//!
//! The algorithm is **luminance-keyed chroma toning**, a deterministic tone map and not a learned model: every
//! pixel keeps its brightness (Y of BT.601 YCbCr) exactly, and takes its chroma (Cb, Cr) from a colour ramp
//! indexed by that brightness — deep shadows blue-violet, low midtones green, upper midtones warm earth and
//! skin tones, highlights pale sky. Because brightness is untouched, every detail of the input survives; what
//! is added is a plausible, consistent palette, in the way hand-tinting a photograph adds colour.
//!
//! Build it into a function image with `sluice build target/release/examples/colourise -t sluice/colourise`.
//! Bad input (not an image) exits 1 with the reason on stderr, which the platform reports as a 500.

use std::io::{Read, Write};

use image::{ImageFormat, Rgb, RgbImage};

/// The ramp: (luminance 0–255, an RGB colour whose chroma is used at that luminance).
const RAMP: [(f32, [f32; 3]); 5] = [
    (0.0, [40.0, 30.0, 90.0]),     // shadows: blue-violet
    (70.0, [40.0, 110.0, 70.0]),   // low midtones: foliage green
    (140.0, [190.0, 130.0, 90.0]), // upper midtones: earth and skin
    (200.0, [235.0, 200.0, 150.0]),
    (255.0, [200.0, 225.0, 255.0]), // highlights: pale sky
];

/// How strongly the ramp's chroma is applied (1.0 = fully).
const STRENGTH: f32 = 0.9;

fn ycbcr(rgb: [f32; 3]) -> (f32, f32, f32) {
    let [r, g, b] = rgb;
    let y = 0.299 * r + 0.587 * g + 0.114 * b;
    (y, 128.0 - 0.168_736 * r - 0.331_264 * g + 0.5 * b, 128.0 + 0.5 * r - 0.418_688 * g - 0.081_312 * b)
}

/// RGB of a YCbCr colour, unclamped, with the chroma given relative to neutral (0, 0).
fn rgb_exact(y: f32, cb: f32, cr: f32) -> [f32; 3] {
    [y + 1.402 * cr, y - 0.344_136 * cb - 0.714_136 * cr, y + 1.772 * cb]
}

/// The colour of luminance `y` with chroma (`cb`, `cr`) scaled down as far as needed to stay displayable, so
/// that clamping never changes the brightness (near black and white there is little room for colour).
fn rgb(y: f32, cb: f32, cr: f32) -> [u8; 3] {
    let (cb, cr) = (cb - 128.0, cr - 128.0);
    let mut k = STRENGTH;
    while k > 0.0 && rgb_exact(y, cb * k, cr * k).iter().any(|c| !(0.0..=255.0).contains(c)) {
        k -= 0.01;
    }
    rgb_exact(y, cb * k.max(0.0), cr * k.max(0.0)).map(|c| c.round().clamp(0.0, 255.0) as u8)
}

/// The ramp's chroma at luminance `y`, interpolated between stops.
fn chroma_at(y: f32) -> (f32, f32) {
    let upper = RAMP.iter().position(|(at, _)| *at >= y).unwrap_or(RAMP.len() - 1).max(1);
    let ((y0, c0), (y1, c1)) = (RAMP[upper - 1], RAMP[upper]);
    let t = ((y - y0) / (y1 - y0)).clamp(0.0, 1.0);
    let (_, cb0, cr0) = ycbcr(c0);
    let (_, cb1, cr1) = ycbcr(c1);
    (cb0 + (cb1 - cb0) * t, cr0 + (cr1 - cr0) * t)
}

/// Colourises `gray` (any image; its luminance is what counts).
fn colourise(input: &image::DynamicImage) -> RgbImage {
    let luma = input.to_luma8();
    // Chroma is computed once per gray level, not once per pixel.
    let table: Vec<[u8; 3]> = (0..=255u8)
        .map(|l| {
            let y = l as f32;
            let (cb, cr) = chroma_at(y);
            rgb(y, cb, cr)
        })
        .collect();
    RgbImage::from_fn(luma.width(), luma.height(), |x, y| Rgb(table[luma.get_pixel(x, y).0[0] as usize]))
}

fn main() -> std::process::ExitCode {
    let mut input = Vec::new();
    if let Err(err) = std::io::stdin().read_to_end(&mut input) {
        eprintln!("colourise: cannot read the request body: {err}");
        return std::process::ExitCode::FAILURE;
    }
    let image = match image::load_from_memory(&input) {
        Ok(image) => image,
        Err(err) => {
            eprintln!("colourise: the body is not a PNG or JPEG image: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut png = std::io::Cursor::new(Vec::new());
    if let Err(err) = colourise(&image).write_to(&mut png, ImageFormat::Png) {
        eprintln!("colourise: cannot encode the result: {err}");
        return std::process::ExitCode::FAILURE;
    }
    let mut out = std::io::stdout().lock();
    if out.write_all(png.get_ref()).and_then(|()| out.flush()).is_err() {
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brightness_is_kept_and_colour_added() {
        for level in [0u8, 10, 60, 128, 190, 245, 255] {
            let [r, g, b] = rgb_of(level);
            let y = 0.299 * r as f32 + 0.587 * g as f32 + 0.114 * b as f32;
            assert!((y - level as f32).abs() <= 1.5, "level {level}: luminance {y}");
        }
        let [r, g, b] = rgb_of(128);
        assert!(r.abs_diff(g) > 10 || g.abs_diff(b) > 10, "midtones get colour: {r} {g} {b}");
    }

    fn rgb_of(level: u8) -> [u8; 3] {
        let gray = image::DynamicImage::ImageLuma8(image::GrayImage::from_pixel(1, 1, image::Luma([level])));
        colourise(&gray).get_pixel(0, 0).0
    }
}
