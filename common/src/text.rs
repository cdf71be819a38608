//! Text from devices and files people produce: UTF-8, or Windows-1251 where the bytes are not
//! UTF-8 (Russian Windows, Excel exports, sysLocation set from a Russian console).

/// Windows-1251 code points of bytes 0x80–0xFF (0x98 is unassigned: U+FFFD).
const CP1251_HIGH: [char; 128] = [
    '\u{0402}', '\u{0403}', '\u{201a}', '\u{0453}', '\u{201e}', '\u{2026}', '\u{2020}', '\u{2021}',
    '\u{20ac}', '\u{2030}', '\u{0409}', '\u{2039}', '\u{040a}', '\u{040c}', '\u{040b}', '\u{040f}',
    '\u{0452}', '\u{2018}', '\u{2019}', '\u{201c}', '\u{201d}', '\u{2022}', '\u{2013}', '\u{2014}',
    '\u{fffd}', '\u{2122}', '\u{0459}', '\u{203a}', '\u{045a}', '\u{045c}', '\u{045b}', '\u{045f}',
    '\u{00a0}', '\u{040e}', '\u{045e}', '\u{0408}', '\u{00a4}', '\u{0490}', '\u{00a6}', '\u{00a7}',
    '\u{0401}', '\u{00a9}', '\u{0404}', '\u{00ab}', '\u{00ac}', '\u{00ad}', '\u{00ae}', '\u{0407}',
    '\u{00b0}', '\u{00b1}', '\u{0406}', '\u{0456}', '\u{0491}', '\u{00b5}', '\u{00b6}', '\u{00b7}',
    '\u{0451}', '\u{2116}', '\u{0454}', '\u{00bb}', '\u{0458}', '\u{0405}', '\u{0455}', '\u{0457}',
    '\u{0410}', '\u{0411}', '\u{0412}', '\u{0413}', '\u{0414}', '\u{0415}', '\u{0416}', '\u{0417}',
    '\u{0418}', '\u{0419}', '\u{041a}', '\u{041b}', '\u{041c}', '\u{041d}', '\u{041e}', '\u{041f}',
    '\u{0420}', '\u{0421}', '\u{0422}', '\u{0423}', '\u{0424}', '\u{0425}', '\u{0426}', '\u{0427}',
    '\u{0428}', '\u{0429}', '\u{042a}', '\u{042b}', '\u{042c}', '\u{042d}', '\u{042e}', '\u{042f}',
    '\u{0430}', '\u{0431}', '\u{0432}', '\u{0433}', '\u{0434}', '\u{0435}', '\u{0436}', '\u{0437}',
    '\u{0438}', '\u{0439}', '\u{043a}', '\u{043b}', '\u{043c}', '\u{043d}', '\u{043e}', '\u{043f}',
    '\u{0440}', '\u{0441}', '\u{0442}', '\u{0443}', '\u{0444}', '\u{0445}', '\u{0446}', '\u{0447}',
    '\u{0448}', '\u{0449}', '\u{044a}', '\u{044b}', '\u{044c}', '\u{044d}', '\u{044e}', '\u{044f}',
];

/// Decodes Windows-1251 bytes.
pub fn decode_cp1251(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| if b < 0x80 { char::from(b) } else { CP1251_HIGH[usize::from(b - 0x80)] }).collect()
}

/// UTF-8 if the bytes are valid UTF-8, otherwise Windows-1251.
pub fn decode_utf8_or_cp1251(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => decode_cp1251(bytes),
    }
}

/// Text of a device string: [`decode_utf8_or_cp1251`], trailing NULs dropped, control
/// characters replaced by spaces, surrounding whitespace trimmed.
pub fn device_text(bytes: &[u8]) -> String {
    let end = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let s = decode_utf8_or_cp1251(&bytes[..end]);
    let cleaned: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    cleaned.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cyrillic_in_both_encodings() {
        let utf8 = "Школа №12, каб. 201".as_bytes();
        assert_eq!(decode_utf8_or_cp1251(utf8), "Школа №12, каб. 201");
        // The same text in Windows-1251: Ш=0xD8 к=0xEA о=0xEE л=0xEB а=0xE0 №=0xB9.
        let cp = b"\xd8\xea\xee\xeb\xe0 \xb912, \xea\xe0\xe1. 201";
        assert_eq!(decode_utf8_or_cp1251(cp), "Школа №12, каб. 201");
        assert_eq!(decode_cp1251(b"\xa8\xb8"), "Ёё");
    }

    #[test]
    fn device_text_cleans() {
        assert_eq!(device_text(b"  HP LaserJet\x00\x00"), "HP LaserJet");
        assert_eq!(device_text(b"a\r\nb"), "a  b");
        assert_eq!(device_text(b""), "");
    }
}
