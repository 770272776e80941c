//! The QR code an authenticator app scans, drawn by the server as SVG
//! (the page needs no script to show it).

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

/// `text` as an SVG QR code, or `None` if it is too long for one.
pub(crate) fn svg(text: &str) -> Option<String> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M).ok()?;
    let image = code
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .quiet_zone(true)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build();
    // Inline in HTML: the element alone, no XML declaration before it.
    let start = image.find("<svg")?;
    Some(image[start..].to_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_otpauth_uri_becomes_an_svg_image() {
        let image = super::svg(
            "otpauth://totp/authgate:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=authgate",
        )
        .unwrap();
        assert!(image.starts_with("<svg") && image.contains("</svg>"), "{image}");
        assert!(!image.contains("<script"));
    }
}
