//! Reading a QR token from a picture of the code (PNG or JPEG): what a phone's camera does for a
//! real wallet. The picture is decoded with `image` under size limits, turned to greyscale and
//! searched with `rqrr`.

use std::io::{Cursor, Read};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use image::{ImageFormat, ImageReader, Limits};

use crate::wallet::WalletError;

/// The largest picture file the wallet reads.
pub const IMAGE_BYTES_MAX: u64 = 20 * 1024 * 1024;
/// The largest picture side, in pixels (a 40-megapixel photo is about 7 700 px wide).
pub const IMAGE_SIDE_PX_MAX: u32 = 10_000;
/// The most memory the decoder may take for one picture.
const IMAGE_ALLOC_BYTES_MAX: u64 = 512 * 1024 * 1024;

/// How large a picture may be, in its file and once decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    pub bytes_max: u64,
    pub side_px_max: u32,
    pub alloc_bytes_max: u64,
}

impl Bounds {
    /// A picture on the customer's own machine (`tolem wallet pay --image`): a whole photo.
    pub const FILE: Bounds = Bounds {
        bytes_max: IMAGE_BYTES_MAX,
        side_px_max: IMAGE_SIDE_PX_MAX,
        alloc_bytes_max: IMAGE_ALLOC_BYTES_MAX,
    };
}

/// Reads a PNG or JPEG file and returns the text of the QR code in it.
pub fn read_file(path: &Path) -> Result<String, WalletError> {
    let unreadable =
        |why: String| WalletError::ImageUnreadable(format!("{}: {why}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| unreadable(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(IMAGE_BYTES_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| unreadable(e.to_string()))?;
    decode(&bytes).map_err(|e| match e {
        WalletError::ImageUnreadable(why) => unreadable(why),
        other => other,
    })
}

/// Returns the text of the QR code in a PNG or JPEG picture. When the picture holds several
/// codes, the first one that reads is taken.
pub fn decode(bytes: &[u8]) -> Result<String, WalletError> {
    decode_within(bytes, Bounds::FILE)
}

/// [`decode`] under `bounds` (a server reading pictures for many customers takes smaller ones).
pub fn decode_within(bytes: &[u8], bounds: Bounds) -> Result<String, WalletError> {
    let too_large = || {
        WalletError::ImageUnreadable(format!(
            "the file is larger than {} MiB",
            bounds.bytes_max / 1024 / 1024
        ))
    };
    if u64::try_from(bytes.len()).map_err(|_| too_large())? > bounds.bytes_max {
        return Err(too_large());
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| WalletError::ImageUnreadable(e.to_string()))?;
    match reader.format() {
        Some(ImageFormat::Png | ImageFormat::Jpeg) => {}
        _ => {
            return Err(WalletError::ImageUnreadable(
                "neither PNG nor JPEG".to_owned(),
            ));
        }
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(bounds.side_px_max);
    limits.max_image_height = Some(bounds.side_px_max);
    limits.max_alloc = Some(bounds.alloc_bytes_max);
    reader.limits(limits);
    let picture = reader
        .decode()
        .map_err(|e| WalletError::ImageUnreadable(e.to_string()))?
        .to_luma8();
    // rqrr is known to panic on some degenerate photos (WanzenBug/rqrr#54, an assertion in its
    // perspective fit). A picture the wallet cannot read must be an error, not a crash.
    let found = catch_unwind(AssertUnwindSafe(|| {
        let (width, height) = (picture.width(), picture.height());
        let mut prepared = rqrr::PreparedImage::prepare_from_greyscale(
            usize::try_from(width).unwrap_or(0),
            usize::try_from(height).unwrap_or(0),
            // The coordinates come from the picture's own width and height, so they fit a u32.
            |x, y| {
                let (x, y) = (u32::try_from(x).unwrap_or(0), u32::try_from(y).unwrap_or(0));
                picture.get_pixel(x, y).0[0]
            },
        );
        let grids = prepared.detect_grids();
        let mut failures = Vec::new();
        for grid in &grids {
            match grid.decode() {
                Ok((_, content)) => return Ok(content),
                Err(e) => failures.push(format!("{e:?}")),
            }
        }
        Err(failures)
    }));
    match found {
        Ok(Ok(content)) if !content.is_empty() => Ok(content),
        Ok(Ok(_)) => Err(WalletError::QrUnreadable("the code is empty".to_owned())),
        Ok(Err(failures)) if failures.is_empty() => Err(WalletError::NoQrCode),
        Ok(Err(failures)) => Err(WalletError::QrUnreadable(failures.join(", "))),
        Err(_) => Err(WalletError::QrUnreadable(
            "the QR reader failed on this picture".to_owned(),
        )),
    }
}

/// The `image` crate the wallet decodes with, for callers that make pictures (tests, tools).
pub use image;

#[cfg(test)]
mod tests {
    use super::*;

    fn png_of(picture: &image::GrayImage) -> Vec<u8> {
        let mut bytes = Cursor::new(Vec::new());
        picture
            .write_to(&mut bytes, ImageFormat::Png)
            .expect("a PNG is written");
        bytes.into_inner()
    }

    #[test]
    fn a_blank_picture_has_no_code() {
        let blank = image::GrayImage::from_pixel(200, 200, image::Luma([255]));
        assert_eq!(decode(&png_of(&blank)), Err(WalletError::NoQrCode));
    }

    #[test]
    fn garbage_and_other_formats_are_unreadable() {
        assert!(matches!(
            decode(b"not a picture"),
            Err(WalletError::ImageUnreadable(_))
        ));
        let mut png = png_of(&image::GrayImage::new(10, 10));
        png.truncate(png.len() / 2);
        assert!(matches!(decode(&png), Err(WalletError::ImageUnreadable(_))));
        assert!(matches!(
            decode(b"GIF89a\x01\x00\x01\x00"),
            Err(WalletError::ImageUnreadable(_))
        ));
    }

    #[test]
    fn a_missing_file_names_the_path() {
        match read_file(Path::new("/no/such/qr.png")) {
            Err(WalletError::ImageUnreadable(why)) => assert!(why.contains("/no/such/qr.png")),
            other => panic!("unexpected {other:?}"),
        }
    }
}
