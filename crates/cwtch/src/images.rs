//! Images: the checks an image passes before a client is told it may show it (issue 12:
//! previews and profile pictures; `docs/specs/file-sharing.md`, "Images").
//!
//! Every image (a contact's profile picture, a preview of an image file offered in a
//! conversation, and our own profile picture before we share it) is **decoded in full** by a
//! real decoder (the `image` crate, PNG, JPEG, GIF and WebP only) with limits on its
//! dimensions and on what decoding may allocate. The format is what the bytes are, never what
//! the name says. An image that does not decode is never reported as an image.

use std::io::Cursor;

use serde::{Deserialize, Serialize};

/// The largest image we share as a profile picture, or download automatically (a contact's
/// profile picture, a preview): 20 MiB, Go's cap for profile images (protocol.md §9).
pub const MAX_IMAGE_SIZE: u64 = 20 * 1024 * 1024;
/// The largest width or height of an image we decode.
pub const MAX_IMAGE_DIMENSION: u32 = 8192;
/// The most a decoder may allocate for one image: an 8192×8192 RGBA image with 8 bits per
/// channel (a 16-bit or larger image of that size is refused).
pub const MAX_DECODED_BYTES: u64 = MAX_IMAGE_DIMENSION as u64 * MAX_IMAGE_DIMENSION as u64 * 4;
/// The profile attribute holding the image-previews setting, `true`/`false` (absent: off).
/// Our own key: Go keeps its "image previews and profile pictures" experiment in the UI's
/// app-wide settings. Local scope: never disclosed.
pub const IMAGE_PREVIEWS_ATTRIBUTE: &str = "local.profile.image-previews";
/// The public profile attribute naming the file key of a profile picture: ours, and, as a
/// conversation attribute, a contact's (Go's `custom-profile-image`, CONFIRMED: protocol.md
/// §9; fetched as `profile.custom-profile-image` with getVal).
pub const PROFILE_IMAGE_ATTRIBUTE: &str = "public.profile.custom-profile-image";
/// The extensions of file names that are previewed (lower case; compared ignoring case).
pub const IMAGE_EXTENSIONS: [&str; 5] = ["png", "jpg", "jpeg", "gif", "webp"];

/// What a checked image is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// `png`, `jpeg`, `gif` or `webp`: what the bytes are, whatever the name says.
    pub format: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The file's size in bytes.
    pub bytes: u64,
}

/// Why an image is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImageError {
    /// Larger than [`MAX_IMAGE_SIZE`].
    #[error("the image is {size} bytes, more than the limit of {limit}")]
    TooLarge {
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Not a PNG, JPEG, GIF or WebP image (by its bytes).
    #[error("not a PNG, JPEG, GIF or WebP image")]
    NotAnImage,
    /// Its dimensions, or what decoding it would take, exceed the limits
    /// ([`MAX_IMAGE_DIMENSION`], [`MAX_DECODED_BYTES`]).
    #[error("the image is too large to decode (at most {MAX_IMAGE_DIMENSION}×{MAX_IMAGE_DIMENSION} pixels)")]
    TooManyPixels,
    /// The decoder found it malformed.
    #[error("the {format} image does not decode: {detail}")]
    Undecodable {
        /// The format its bytes claim.
        format: &'static str,
        /// The decoder's message.
        detail: String,
    },
}

/// Whether a file name (as offered, untrusted) has an image extension ([`IMAGE_EXTENSIONS`]).
pub fn is_image_name(name: &str) -> bool {
    name.rsplit_once('.').is_some_and(|(stem, ext)| {
        !stem.is_empty() && IMAGE_EXTENSIONS.iter().any(|e| e.eq_ignore_ascii_case(ext))
    })
}

/// Decode `data` in full, within the limits, and say what image it is.
///
/// CPU-bound (up to a few hundred milliseconds for the largest images): call it from a
/// blocking task.
pub fn check_image(data: &[u8]) -> Result<ImageInfo, ImageError> {
    decode(data).map(|(info, _)| info)
}

/// A small picture of an image, for a terminal: `width`×`height` RGB pixels row by row,
/// transparent parts over black.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbnail {
    /// Pixels per row.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// `width * height` pixels, the first row first.
    pub pixels: Vec<[u8; 3]>,
}

impl Thumbnail {
    /// The pixel at column `x` of row `y` (black outside the picture).
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        if x >= self.width || y >= self.height {
            return [0; 3];
        }
        self.pixels
            .get((y as usize) * (self.width as usize) + x as usize)
            .copied()
            .unwrap_or([0; 3])
    }
}

/// Decode `data` as [`check_image`] does (the same limits, the same errors) and shrink it to
/// fit `max_width`×`max_height` pixels, its proportions kept (never enlarged; at least 1×1).
///
/// CPU-bound, like [`check_image`]: call it from a blocking task.
pub fn thumbnail(data: &[u8], max_width: u32, max_height: u32) -> Result<Thumbnail, ImageError> {
    let (_, decoded) = decode(data)?;
    let (max_width, max_height) = (max_width.max(1), max_height.max(1));
    let small = if decoded.width() <= max_width && decoded.height() <= max_height {
        decoded
    } else {
        decoded.thumbnail(max_width, max_height)
    };
    let rgba = small.to_rgba8();
    let over_black = |c: u8, a: u8| ((u16::from(c) * u16::from(a) + 127) / 255) as u8;
    Ok(Thumbnail {
        width: rgba.width(),
        height: rgba.height(),
        pixels: rgba
            .pixels()
            .map(|p| {
                let [r, g, b, a] = p.0;
                [over_black(r, a), over_black(g, a), over_black(b, a)]
            })
            .collect(),
    })
}

/// Decode `data` in full, within the limits.
fn decode(data: &[u8]) -> Result<(ImageInfo, image::DynamicImage), ImageError> {
    let size = data.len() as u64;
    if size > MAX_IMAGE_SIZE {
        return Err(ImageError::TooLarge {
            size,
            limit: MAX_IMAGE_SIZE,
        });
    }
    let guessed = image::guess_format(data).map_err(|_| ImageError::NotAnImage)?;
    let format = match guessed {
        image::ImageFormat::Png => "png",
        image::ImageFormat::Jpeg => "jpeg",
        image::ImageFormat::Gif => "gif",
        image::ImageFormat::WebP => "webp",
        _ => return Err(ImageError::NotAnImage),
    };
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_DIMENSION);
    limits.max_image_height = Some(MAX_IMAGE_DIMENSION);
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    let mut reader = image::ImageReader::new(Cursor::new(data));
    reader.set_format(guessed);
    reader.limits(limits);
    let decoded = reader.decode().map_err(|e| match e {
        image::ImageError::Limits(_) => ImageError::TooManyPixels,
        image::ImageError::Unsupported(_) => ImageError::NotAnImage,
        e => ImageError::Undecodable {
            format,
            detail: e.to_string(),
        },
    })?;
    let (width, height) = (decoded.width(), decoded.height());
    if width == 0 || height == 0 {
        return Err(ImageError::Undecodable {
            format,
            detail: "the image has no pixels".into(),
        });
    }
    let info = ImageInfo {
        format: format.to_owned(),
        width,
        height,
        bytes: size,
    };
    Ok((info, decoded))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(w: u32, h: u32, format: image::ImageFormat) -> Vec<u8> {
        let img = image::RgbaImage::from_fn(w, h, |x, y| {
            image::Rgba([(x * 7) as u8, (y * 5) as u8, (x ^ y) as u8, 255])
        });
        let mut out = Cursor::new(Vec::new());
        image::DynamicImage::ImageRgba8(img)
            .write_to(&mut out, format)
            .unwrap();
        out.into_inner()
    }

    /// A valid PNG whose header is rewritten to declare `w`×`h` (with a correct CRC).
    pub(crate) fn png_declaring(w: u32, h: u32) -> Vec<u8> {
        let mut png = encode(4, 4, image::ImageFormat::Png);
        // Signature (8), IHDR length (4), "IHDR" (4), width, height, ...; CRC after 13 bytes.
        png[16..20].copy_from_slice(&w.to_be_bytes());
        png[20..24].copy_from_slice(&h.to_be_bytes());
        let crc = crc32(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        png
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in data {
            c ^= u32::from(b);
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0xEDB8_8320
                } else {
                    c >> 1
                };
            }
        }
        !c
    }

    #[test]
    fn thumbnails_keep_proportions_and_colours() {
        // Left half red, right half blue; 200×100.
        let img = image::RgbaImage::from_fn(200, 100, |x, _| {
            if x < 100 {
                image::Rgba([255, 0, 0, 255])
            } else {
                image::Rgba([0, 0, 255, 255])
            }
        });
        let mut out = Cursor::new(Vec::new());
        image::DynamicImage::ImageRgba8(img)
            .write_to(&mut out, image::ImageFormat::Png)
            .unwrap();
        let t = thumbnail(out.get_ref(), 40, 40).unwrap();
        assert_eq!((t.width, t.height), (40, 20));
        assert_eq!(t.pixels.len(), 800);
        assert_eq!(t.pixel(0, 0), [255, 0, 0]);
        assert_eq!(t.pixel(39, 19), [0, 0, 255]);
        assert_eq!(t.pixel(40, 0), [0, 0, 0], "outside");
        // Never enlarged; transparency over black.
        let half = image::RgbaImage::from_pixel(3, 2, image::Rgba([200, 100, 50, 128]));
        let mut out = Cursor::new(Vec::new());
        image::DynamicImage::ImageRgba8(half)
            .write_to(&mut out, image::ImageFormat::Png)
            .unwrap();
        let t = thumbnail(out.get_ref(), 40, 40).unwrap();
        assert_eq!((t.width, t.height), (3, 2));
        assert_eq!(t.pixel(2, 1), [100, 50, 25]);
        // The decoder's limits and errors are check_image's.
        assert_eq!(
            thumbnail(&png_declaring(100_000, 100_000), 40, 40),
            Err(ImageError::TooManyPixels)
        );
        assert_eq!(
            thumbnail(b"not an image", 40, 40),
            Err(ImageError::NotAnImage)
        );
    }

    #[test]
    fn real_images_are_described() {
        for (f, name) in [
            (image::ImageFormat::Png, "png"),
            (image::ImageFormat::Gif, "gif"),
            (image::ImageFormat::WebP, "webp"),
        ] {
            let data = encode(33, 17, f);
            let info = check_image(&data).unwrap();
            assert_eq!(
                info,
                ImageInfo {
                    format: name.into(),
                    width: 33,
                    height: 17,
                    bytes: data.len() as u64
                }
            );
        }
        // JPEG has no alpha: encode RGB.
        let rgb = image::RgbImage::from_pixel(20, 10, image::Rgb([1, 2, 3]));
        let mut out = Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(rgb)
            .write_to(&mut out, image::ImageFormat::Jpeg)
            .unwrap();
        let info = check_image(out.get_ref()).unwrap();
        assert_eq!(
            (info.format.as_str(), info.width, info.height),
            ("jpeg", 20, 10)
        );
    }

    #[test]
    fn hostile_images_are_refused() {
        assert_eq!(check_image(b""), Err(ImageError::NotAnImage));
        let r = check_image(b"GIF89a\x01\x00\x01\x00\x80\x00\x00 but not really");
        assert!(
            matches!(r, Err(ImageError::Undecodable { format: "gif", .. })),
            "{r:?}"
        );
        // Garbage behind a PNG signature.
        let mut garbage = b"\x89PNG\r\n\x1a\n".to_vec();
        garbage.extend((0..1000u32).map(|i| (i * 31 % 251) as u8));
        assert!(matches!(
            check_image(&garbage),
            Err(ImageError::Undecodable { format: "png", .. })
        ));
        // A truncated PNG.
        let png = encode(64, 64, image::ImageFormat::Png);
        assert!(matches!(
            check_image(&png[..png.len() / 2]),
            Err(ImageError::Undecodable { .. })
        ));
        // A decompression bomb: a tiny file declaring 100000×100000 pixels.
        let bomb = png_declaring(100_000, 100_000);
        assert!(bomb.len() < 200);
        assert_eq!(check_image(&bomb), Err(ImageError::TooManyPixels));
        // Just over the dimension limit, either way.
        assert_eq!(
            check_image(&png_declaring(MAX_IMAGE_DIMENSION + 1, 1)),
            Err(ImageError::TooManyPixels)
        );
        assert_eq!(
            check_image(&png_declaring(1, MAX_IMAGE_DIMENSION + 1)),
            Err(ImageError::TooManyPixels)
        );
        // Within the limits but lying about its size: the pixel data is too short.
        assert!(matches!(
            check_image(&png_declaring(64, 64)),
            Err(ImageError::Undecodable { .. })
        ));
        // Too large a file.
        let big = vec![0u8; MAX_IMAGE_SIZE as usize + 1];
        assert!(matches!(
            check_image(&big),
            Err(ImageError::TooLarge { .. })
        ));
        // Formats we do not decode.
        assert_eq!(check_image(b"BM\0\0\0\0\0\0"), Err(ImageError::NotAnImage));
    }

    #[test]
    fn image_names() {
        for yes in ["a.png", "b.JPG", "c.jpeg", "d.gif", "e.WebP", "x.tar.png"] {
            assert!(is_image_name(yes), "{yes}");
        }
        for no in ["png", ".png", "a.svg", "a.png.exe", "a", "a.", "a.bmp"] {
            assert!(!is_image_name(no), "{no}");
        }
    }
}
