//! EDID (VESA E-EDID 1.3/1.4) base block: identity, name, serial and physical size of a display.
//!
//! [`parse`] refuses short blocks, a wrong header and a bad checksum (the caller then leaves the
//! display's fields empty and warns). [`encode`] builds a valid block from a [`Spec`]: tests
//! and fixture tools use it to make EDIDs of real-looking panels and monitors.

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

/// What an EDID says about a display.
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
    /// Image size, mm: from the first detailed timing, else from the cm fields.
    pub width_mm: u32,
    /// Image height, mm.
    pub height_mm: u32,
}

impl Edid {
    /// The serial as text: the descriptor when present, else the numeric serial when not 0.
    pub fn serial(&self) -> Option<String> {
        self.serial_text.clone().or_else(|| (self.serial_number != 0).then(|| self.serial_number.to_string()))
    }

    /// Diagonal in tenths of an inch.
    pub fn diagonal_decimal_in(&self) -> u16 {
        let (w, h) = (f64::from(self.width_mm), f64::from(self.height_mm));
        ((w * w + h * h).sqrt() / 25.4 * 10.0).round().clamp(0.0, f64::from(u16::MAX)) as u16
    }
}

/// Parses the base block.
pub fn parse(bytes: &[u8]) -> Result<Edid, EdidError> {
    let Some(b) = bytes.get(..BLOCK) else {
        return Err(EdidError::Truncated(bytes.len()));
    };
    if b[..8] != HEADER {
        return Err(EdidError::Header);
    }
    if b.iter().fold(0u8, |a, x| a.wrapping_add(*x)) != 0 {
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
        width_mm: u32::from(b[21]) * 10,
        height_mm: u32::from(b[22]) * 10,
    };
    let mut timing_seen = false;
    for d in b[54..126].chunks(18) {
        if d[0] == 0 && d[1] == 0 {
            match d[3] {
                0xfc => e.name = descriptor_text(&d[5..18]),
                0xff => e.serial_text = descriptor_text(&d[5..18]),
                _ => {}
            }
        } else if !timing_seen {
            // First detailed timing descriptor: image size in mm (more precise than cm).
            timing_seen = true;
            let w = u32::from(d[12]) | (u32::from(d[14] >> 4) << 8);
            let h = u32::from(d[13]) | (u32::from(d[14] & 0x0f) << 8);
            if w > 0 && h > 0 {
                e.width_mm = w;
                e.height_mm = h;
            }
        }
    }
    Ok(e)
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
#[derive(Debug, Clone)]
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
    /// Image width, mm.
    pub width_mm: u16,
    /// Image height, mm.
    pub height_mm: u16,
}

/// Builds a valid 128-byte EDID 1.4 base block with a 1920×1080@60 detailed timing.
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
    b[21] = u8::try_from(s.width_mm.div_ceil(10)).unwrap_or(u8::MAX);
    b[22] = u8::try_from(s.height_mm.div_ceil(10)).unwrap_or(u8::MAX);
    b[23] = 120; // gamma 2.2
    b[24] = 0x06;
    // Detailed timing 1: 148.5 MHz, 1920×1080 with the physical size in mm.
    let dtd: [u8; 18] = [
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
        (s.width_mm & 0xff) as u8,
        (s.height_mm & 0xff) as u8,
        (((s.width_mm >> 8) & 0x0f) << 4) as u8 | ((s.height_mm >> 8) & 0x0f) as u8,
        0x00,
        0x00,
        0x1e,
    ];
    b[54..72].copy_from_slice(&dtd);
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
    b[126] = 0; // no extensions
    let sum = b[..127].iter().fold(0u8, |a, x| a.wrapping_add(*x));
    b[127] = 0u8.wrapping_sub(sum);
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
        })
    }

    #[test]
    fn encode_then_parse_round_trips() {
        let e = parse(&panel()).unwrap();
        assert_eq!(e.manufacturer, "TCH");
        assert_eq!(e.product_code, 0x4b1d);
        assert_eq!(e.serial(), Some("TT75A0042".into()));
        assert_eq!(e.name.as_deref(), Some("TeachTouch 75"));
        assert_eq!((e.width_mm, e.height_mm, e.year), (1650, 928, 2022));
        assert_eq!(e.diagonal_decimal_in(), 745);
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
        });
        let e = parse(&b).unwrap();
        assert_eq!(e.serial(), Some("19088743".into()));
        assert_eq!(e.diagonal_decimal_in(), 240);
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
