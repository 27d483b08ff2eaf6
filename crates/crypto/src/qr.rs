//! QR codes rendered as standalone SVG documents, for showing `otpauth://` URIs.

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

use crate::CryptoError;

/// The smallest width and height of the rendered image in SVG user units (pixels).
const MIN_SIZE: u32 = 200;

/// Renders `text` as a QR code (error correction level M, with the standard quiet zone) in a
/// standalone SVG document, black modules on a white background.
///
/// # Errors
///
/// Returns [`CryptoError::Qr`] if the text does not fit in a QR code (over 2,331 bytes).
pub fn qr_svg(text: &str) -> Result<String, CryptoError> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|_| CryptoError::Qr)?;
    Ok(code
        .render::<svg::Color<'_>>()
        .quiet_zone(true)
        .min_dimensions(MIN_SIZE, MIN_SIZE)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_standalone_svg() {
        let uri = "otpauth://totp/Tessera:alice%40example.org?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
                   &issuer=Tessera&algorithm=SHA1&digits=6&period=30";
        let svg = qr_svg(uri).unwrap();
        assert!(svg.starts_with("<?xml"));
        assert!(svg.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(svg.ends_with("</svg>"));
        assert!(svg.contains("fill=\"#000000\""));
        assert!(svg.contains("fill=\"#ffffff\""));
        // The secret is encoded in the modules, not present as text in the document.
        assert!(!svg.contains("GEZDGNBV"));
        // Rendering is deterministic, and different input gives a different picture.
        assert_eq!(svg, qr_svg(uri).unwrap());
        assert_ne!(svg, qr_svg("otpauth://totp/other").unwrap());
    }

    #[test]
    fn image_is_at_least_the_minimum_size() {
        let svg = qr_svg("x").unwrap();
        let width: u32 = svg
            .split("width=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .and_then(|w| w.parse().ok())
            .unwrap();
        assert!(width >= MIN_SIZE, "{width}");
    }

    #[test]
    fn refuses_text_that_does_not_fit() {
        assert_eq!(qr_svg(&"a".repeat(5000)), Err(CryptoError::Qr));
        assert!(qr_svg(&"a".repeat(2000)).is_ok());
    }
}
