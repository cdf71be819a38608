//! EDID (VESA E-EDID 1.3/1.4): identity, name, serial, and every physical size a display
//! states — the base block's centimetres, each detailed timing's millimetres (base block and
//! CTA-861 extensions) and DisplayID display parameters.
//!
//! [`parse`] refuses a short base block, a wrong header and a bad checksum (the caller then
//! leaves the display's fields empty and warns); a damaged extension block is left out and
//! named. [`encode`] builds valid EDIDs from a [`Spec`], with inconsistent sizes when asked:
//! tests and fixture tools use it to make EDIDs of real-looking panels and monitors.

/// Size of the base block.
pub const BLOCK: usize = 128;
const HEADER: [u8; 8] = [0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00];

/// Why an EDID was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EdidError {
    /// Fewer than 128 bytes.
    #[error("EDID truncated: {0} bytes, a base block has 128")]
    Truncated(usize),
    /// The fixed header is wrong.
    #[error("not an EDID: wrong header")]
    Header,
    /// The base block's bytes do not sum to 0 mod 256.
    #[error("EDID checksum mismatch")]
    Checksum,
}

/// Which block an image size was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeOrigin {
    /// A detailed timing descriptor of the base block.
    BaseTiming,
    /// A detailed timing descriptor of a CTA-861 extension block.
    CtaTiming,
    /// A DisplayID extension's display parameters block.
    DisplayId,
}

/// An image size stated somewhere in the EDID, mm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatedSize {
    /// Where it was read.
    pub origin: SizeOrigin,
    /// Active pixels of the timing it came with (0 × 0 for DisplayID).
    pub pixels: (u16, u16),
    /// Width, mm.
    pub width_mm: u32,
    /// Height, mm.
    pub height_mm: u32,
}

/// What an EDID says about a display. Sizes are kept as stated, every one of them: which to
/// believe is decided in [`super::display`], because real firmware puts board defaults in some.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edid {
    /// PNP manufacturer id, e.g. `SAM`.
    pub manufacturer: String,
    /// Product code.
    pub product_code: u16,
    /// Numeric serial (0 when absent).
    pub serial_number: u32,
    /// Serial number descriptor (0xFF).
    pub serial_text: Option<String>,
    /// Monitor name descriptor (0xFC).
    pub name: Option<String>,
    /// Year of manufacture (0 when the EDID leaves the year byte 0).
    pub year: u16,
    /// The base block's screen size (bytes 21–22, whole centimetres) in mm; `None` when either
    /// is 0 (undefined, or an aspect ratio in EDID 1.4).
    pub base_mm: Option<(u32, u32)>,
    /// Image sizes of the detailed timings (base block, then CTA extensions) and DisplayID
    /// blocks, in the order they appear; timings that state no size are left out.
    pub stated: Vec<StatedSize>,
    /// Extension blocks present but unusable (bad checksum, truncated), by number.
    pub bad_extensions: Vec<u8>,
}

impl Edid {
    /// The serial as text: the descriptor when present, else the numeric serial when not 0.
    pub fn serial(&self) -> Option<String> {
        self.serial_text.clone().or_else(|| (self.serial_number != 0).then(|| self.serial_number.to_string()))
    }

    /// The first serial that tells units apart: the descriptor, else the numeric serial, each
    /// only when it is not a placeholder ([`parta_common::serial::is_placeholder`]).
    pub fn unit_serial(&self) -> Option<String> {
        let numeric = (self.serial_number != 0).then(|| self.serial_number.to_string());
        [self.serial_text.clone(), numeric]
            .into_iter()
            .flatten()
            .find(|s| !parta_common::serial::is_placeholder(s))
    }
}

/// Diagonal of a size in mm, tenths of an inch.
pub fn diagonal_decimal_in(width_mm: u32, height_mm: u32) -> u16 {
    let (w, h) = (f64::from(width_mm), f64::from(height_mm));
    ((w * w + h * h).sqrt() / 25.4 * 10.0).round().clamp(0.0, f64::from(u16::MAX)) as u16
}

/// Parses the base block and the extension blocks that follow it (as sysfs gives them).
pub fn parse(bytes: &[u8]) -> Result<Edid, EdidError> {
    let Some(b) = bytes.get(..BLOCK) else {
        return Err(EdidError::Truncated(bytes.len()));
    };
    if b[..8] != HEADER {
        return Err(EdidError::Header);
    }
    if !checksum_ok(b) {
        return Err(EdidError::Checksum);
    }
    let id = u16::from_be_bytes([b[8], b[9]]);
    let letter = |shift: u16| {
        let v = ((id >> shift) & 0x1f) as u8;
        if (1..=26).contains(&v) { char::from(b'A' + v - 1) } else { '?' }
    };
    let manufacturer: String = [letter(10), letter(5), letter(0)].iter().collect();
    let mut e = Edid {
        manufacturer,
        product_code: u16::from_le_bytes([b[10], b[11]]),
        serial_number: u32::from_le_bytes([b[12], b[13], b[14], b[15]]),
        serial_text: None,
        name: None,
        year: if b[17] == 0 { 0 } else { 1990 + u16::from(b[17]) },
        base_mm: (b[21] != 0 && b[22] != 0).then(|| (u32::from(b[21]) * 10, u32::from(b[22]) * 10)),
        stated: Vec::new(),
        bad_extensions: Vec::new(),
    };
    for d in b[54..126].chunks(18) {
        if d[0] == 0 && d[1] == 0 {
            match d[3] {
                0xfc => e.name = descriptor_text(&d[5..18]),
                0xff => e.serial_text = descriptor_text(&d[5..18]),
                _ => {}
            }
        } else {
            e.stated.extend(timing_size(d, SizeOrigin::BaseTiming));
        }
    }
    for n in 1..=b[126] {
        let at = usize::from(n) * BLOCK;
        match bytes.get(at..at + BLOCK) {
            Some(x) if checksum_ok(x) => extension(x, &mut e.stated),
            _ => e.bad_extensions.push(n),
        }
    }
    Ok(e)
}

fn checksum_ok(block: &[u8]) -> bool {
    block.iter().fold(0u8, |a, x| a.wrapping_add(*x)) == 0
}

/// The image size of a detailed timing descriptor (pixel clock ≠ 0), when it states one.
fn timing_size(d: &[u8], origin: SizeOrigin) -> Option<StatedSize> {
    if d.len() < 18 || (d[0] == 0 && d[1] == 0) {
        return None;
    }
    let w = u32::from(d[12]) | (u32::from(d[14] >> 4) << 8);
    let h = u32::from(d[13]) | (u32::from(d[14] & 0x0f) << 8);
    let hact = u16::from(d[2]) | (u16::from(d[4] >> 4) << 8);
    let vact = u16::from(d[5]) | (u16::from(d[7] >> 4) << 8);
    (w > 0 && h > 0).then_some(StatedSize { origin, pixels: (hact, vact), width_mm: w, height_mm: h })
}

/// Sizes from one extension block: CTA-861 detailed timings, DisplayID display parameters.
fn extension(x: &[u8], out: &mut Vec<StatedSize>) {
    match x[0] {
        // CTA-861: byte 2 is where the detailed timings start (0: none); they run to byte 126.
        0x02 => {
            let start = usize::from(x[2]);
            if (4..=127).contains(&start) {
                let mut at = start;
                while at + 18 <= 127 {
                    let d = &x[at..at + 18];
                    if d[0] == 0 && d[1] == 0 {
                        break;
                    }
                    out.extend(timing_size(d, SizeOrigin::CtaTiming));
                    at += 18;
                }
            }
        }
        // DisplayID as an EDID extension: bytes 1–4 are the section header (version, payload
        // length, product type, extension count), data blocks (tag, revision, length,
        // payload) follow. Display parameters: tag 0x01 (DisplayID 1.x, size in 0.1 mm) and
        // 0x21 (2.x, 0.1 mm, or 1 mm when bit 7 of the revision byte is set).
        0x70 => {
            let end = (5 + usize::from(x[2])).min(127);
            let mut at = 5;
            while at + 3 <= end {
                let (tag, rev, len) = (x[at], x[at + 1], usize::from(x[at + 2]));
                let payload = &x[(at + 3).min(end)..(at + 3 + len).min(end)];
                if (tag == 0x01 || tag == 0x21) && payload.len() >= 4 {
                    let unit = if tag == 0x21 && rev & 0x80 != 0 { 10 } else { 1 };
                    let w = u32::from(u16::from_le_bytes([payload[0], payload[1]])) * unit / 10;
                    let h = u32::from(u16::from_le_bytes([payload[2], payload[3]])) * unit / 10;
                    if w > 0 && h > 0 {
                        out.push(StatedSize {
                            origin: SizeOrigin::DisplayId,
                            pixels: (0, 0),
                            width_mm: w,
                            height_mm: h,
                        });
                    }
                }
                if tag == 0 && len == 0 {
                    break; // padding
                }
                at += 3 + len;
            }
        }
        _ => {}
    }
}

/// Descriptor text: up to 13 bytes, ended by a newline, padded with spaces; printable ASCII only.
fn descriptor_text(raw: &[u8]) -> Option<String> {
    let end = raw.iter().position(|&c| c == b'\n').unwrap_or(raw.len());
    let s: String =
        raw[..end].iter().filter(|c| c.is_ascii_graphic() || **c == b' ').map(|&c| char::from(c)).collect();
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// What to put in an EDID built by [`encode`].
#[derive(Debug, Clone, Default)]
pub struct Spec<'a> {
    /// Three capital letters.
    pub manufacturer: &'a str,
    /// Product code.
    pub product_code: u16,
    /// Numeric serial.
    pub serial_number: u32,
    /// Serial descriptor.
    pub serial_text: Option<&'a str>,
    /// Name descriptor (≤ 13 characters).
    pub name: Option<&'a str>,
    /// Year of manufacture (≥ 1990).
    pub year: u16,
    /// Image width of the first detailed timing, mm.
    pub width_mm: u16,
    /// Image height of the first detailed timing, mm.
    pub height_mm: u16,
    /// The base block's size in whole cm; `None`: the timing's size rounded up; `Some((0, 0))`:
    /// undefined.
    pub base_cm: Option<(u8, u8)>,
    /// Image sizes of detailed timings in a CTA-861 extension block (none: no extension).
    pub cta_sizes_mm: &'a [(u16, u16)],
}

/// An 18-byte detailed timing descriptor: 148.5 MHz, 1920×1080, with this image size.
fn dtd_1080p(width_mm: u16, height_mm: u16) -> [u8; 18] {
    [
        0x02,
        0x3a,
        0x80,
        0x18,
        0x71,
        0x38,
        0x2d,
        0x40,
        0x58,
        0x2c,
        0x45,
        0x00,
        (width_mm & 0xff) as u8,
        (height_mm & 0xff) as u8,
        (((width_mm >> 8) & 0x0f) << 4) as u8 | ((height_mm >> 8) & 0x0f) as u8,
        0x00,
        0x00,
        0x1e,
    ]
}

fn seal(block: &mut [u8]) {
    let sum = block[..127].iter().fold(0u8, |a, x| a.wrapping_add(*x));
    block[127] = 0u8.wrapping_sub(sum);
}

/// Builds a valid EDID 1.4 base block with a 1920×1080@60 detailed timing, and a CTA-861
/// extension block when [`Spec::cta_sizes_mm`] is not empty.
pub fn encode(s: &Spec<'_>) -> Vec<u8> {
    let mut b = vec![0u8; BLOCK];
    b[..8].copy_from_slice(&HEADER);
    let l: Vec<u16> = s.manufacturer.bytes().map(|c| u16::from(c.saturating_sub(b'A') + 1) & 0x1f).collect();
    let id = (l.first().copied().unwrap_or(0) << 10)
        | (l.get(1).copied().unwrap_or(0) << 5)
        | l.get(2).copied().unwrap_or(0);
    b[8..10].copy_from_slice(&id.to_be_bytes());
    b[10..12].copy_from_slice(&s.product_code.to_le_bytes());
    b[12..16].copy_from_slice(&s.serial_number.to_le_bytes());
    b[16] = 1; // week
    b[17] = u8::try_from(s.year.saturating_sub(1990)).unwrap_or(u8::MAX);
    b[18] = 1;
    b[19] = 4;
    b[20] = 0xa5; // digital input, 8 bits per colour, DisplayPort
    let (cm_w, cm_h) = s.base_cm.unwrap_or((
        u8::try_from(s.width_mm.div_ceil(10)).unwrap_or(u8::MAX),
        u8::try_from(s.height_mm.div_ceil(10)).unwrap_or(u8::MAX),
    ));
    b[21] = cm_w;
    b[22] = cm_h;
    b[23] = 120; // gamma 2.2
    b[24] = 0x06;
    b[54..72].copy_from_slice(&dtd_1080p(s.width_mm, s.height_mm));
    let mut slot = 72;
    for (tag, text) in [(0xfc_u8, s.name), (0xff_u8, s.serial_text)] {
        if let Some(t) = text {
            let mut d = [0u8; 18];
            d[3] = tag;
            let mut field = [b' '; 13];
            let bytes = t.as_bytes();
            let n = bytes.len().min(13);
            field[..n].copy_from_slice(&bytes[..n]);
            if n < 13 {
                field[n] = b'\n';
            }
            d[5..18].copy_from_slice(&field);
            b[slot..slot + 18].copy_from_slice(&d);
            slot += 18;
        }
    }
    while slot < 126 {
        b[slot + 3] = 0x10; // dummy descriptor
        slot += 18;
    }
    let cta = s.cta_sizes_mm.iter().take(6);
    b[126] = u8::from(cta.len() > 0);
    seal(&mut b);
    if cta.len() > 0 {
        let mut x = vec![0u8; BLOCK];
        x[0] = 0x02;
        x[1] = 3;
        x[2] = 4; // no data blocks: detailed timings start at byte 4
        for (i, (w, h)) in cta.enumerate() {
            x[4 + i * 18..22 + i * 18].copy_from_slice(&dtd_1080p(*w, *h));
        }
        seal(&mut x);
        b.extend(x);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn panel() -> Vec<u8> {
        encode(&Spec {
            manufacturer: "TCH",
            product_code: 0x4b1d,
            serial_number: 42,
            serial_text: Some("TT75A0042"),
            name: Some("TeachTouch 75"),
            year: 2022,
            width_mm: 1650,
            height_mm: 928,
            ..Spec::default()
        })
    }

    fn sizes(e: &Edid) -> Vec<(SizeOrigin, u32, u32)> {
        e.stated.iter().map(|s| (s.origin, s.width_mm, s.height_mm)).collect()
    }

    #[test]
    fn encode_then_parse_round_trips() {
        let e = parse(&panel()).unwrap();
        assert_eq!(e.manufacturer, "TCH");
        assert_eq!(e.product_code, 0x4b1d);
        assert_eq!(e.serial(), Some("TT75A0042".into()));
        assert_eq!(e.unit_serial(), Some("TT75A0042".into()));
        assert_eq!(e.name.as_deref(), Some("TeachTouch 75"));
        assert_eq!(e.year, 2022);
        assert_eq!(e.base_mm, Some((1650, 930)));
        assert_eq!(sizes(&e), [(SizeOrigin::BaseTiming, 1650, 928)]);
        assert_eq!(e.stated[0].pixels, (1920, 1080));
        assert_eq!(diagonal_decimal_in(1650, 928), 745);
    }

    #[test]
    fn extension_timings_and_undefined_base_size() {
        let b = encode(&Spec {
            manufacturer: "HEC",
            width_mm: 800,
            height_mm: 450,
            base_cm: Some((0, 0)),
            cta_sizes_mm: &[(800, 450), (1428, 804)],
            ..Spec::default()
        });
        assert_eq!(b.len(), 256);
        let e = parse(&b).unwrap();
        assert_eq!(e.base_mm, None);
        assert_eq!(
            sizes(&e),
            [
                (SizeOrigin::BaseTiming, 800, 450),
                (SizeOrigin::CtaTiming, 800, 450),
                (SizeOrigin::CtaTiming, 1428, 804)
            ]
        );
        // A damaged extension is left out and named; the base block still counts.
        let mut bad = b.clone();
        bad[200] ^= 1;
        let e = parse(&bad).unwrap();
        assert_eq!(e.bad_extensions, [1]);
        assert_eq!(e.stated.len(), 1);
        // Promised but missing.
        let e = parse(&b[..128]).unwrap();
        assert_eq!(e.bad_extensions, [1]);
    }

    #[test]
    fn displayid_display_parameters() {
        let mut b = encode(&Spec { manufacturer: "DEL", width_mm: 600, height_mm: 340, ..Spec::default() });
        b[126] = 1;
        seal(&mut b[..128]);
        let mut x = vec![0u8; BLOCK];
        x[0] = 0x70;
        x[1] = 0x12; // DisplayID 1.2
        x[2] = 15; // payload length
        // Display parameters (0x01): 5970 × 3360 in 0.1 mm, then the rest of the block.
        x[5..8].copy_from_slice(&[0x01, 0x00, 12]);
        x[8..12].copy_from_slice(&[0x52, 0x17, 0x20, 0x0d]);
        seal(&mut x);
        b.extend(x);
        let e = parse(&b).unwrap();
        assert_eq!(
            e.stated.last().map(|s| (s.origin, s.width_mm, s.height_mm)),
            Some((SizeOrigin::DisplayId, 597, 336))
        );
    }

    #[test]
    fn placeholder_serials_are_not_unit_serials() {
        let b = encode(&Spec {
            manufacturer: "PHL",
            serial_number: 16_843_009,
            serial_text: Some("1234567890"),
            width_mm: 1650,
            height_mm: 928,
            ..Spec::default()
        });
        let e = parse(&b).unwrap();
        assert_eq!(e.serial(), Some("1234567890".into()), "kept as read");
        assert_eq!(e.unit_serial(), None);
        let b = encode(&Spec {
            manufacturer: "NEC",
            serial_number: 16_843_009,
            serial_text: Some("3Y005307NB"),
            width_mm: 1209,
            height_mm: 680,
            ..Spec::default()
        });
        assert_eq!(parse(&b).unwrap().unit_serial(), Some("3Y005307NB".into()));
    }

    #[test]
    fn numeric_serial_when_no_descriptor() {
        let b = encode(&Spec {
            manufacturer: "SAM",
            product_code: 0x0f6b,
            serial_number: 0x0123_4567,
            serial_text: None,
            name: Some("S24F350"),
            year: 2019,
            width_mm: 531,
            height_mm: 299,
            ..Spec::default()
        });
        let e = parse(&b).unwrap();
        assert_eq!(e.serial(), Some("19088743".into()));
        assert_eq!(e.unit_serial(), Some("19088743".into()));
    }

    #[test]
    fn refuses_truncated_bad_header_and_bad_checksum() {
        let b = panel();
        assert_eq!(parse(&b[..100]), Err(EdidError::Truncated(100)));
        let mut bad = b.clone();
        bad[0] = 1;
        assert_eq!(parse(&bad), Err(EdidError::Header));
        let mut bad = b;
        bad[40] ^= 0x10;
        assert_eq!(parse(&bad), Err(EdidError::Checksum));
        assert!(parse(&[]).is_err());
    }
}
