//! Exports of the compliance report: XLSX (a sheet per table, Russian headers, frozen header
//! row, filters), CSV (UTF-8 with BOM, `;`, CRLF, decimal commas in Russian: what Russian Excel
//! opens right) and JSON. Both tabular formats render the same [`Sheet`]s, and nothing in an
//! export depends on the clock: the same report gives the same bytes.

use rust_xlsxwriter::{DocProperties, ExcelDateTime, Format, FormatAlign, Workbook};

use super::profile::Profile;
use super::report::{ComplianceReport, DeviceLine, Status};

/// Language of the tabular exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Русский (default).
    Ru,
    /// English.
    En,
}

impl Lang {
    /// Parses `ru` or `en`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "ru" => Ok(Self::Ru),
            "en" => Ok(Self::En),
            _ => Err(format!("unknown language {s:?}: expected ru or en")),
        }
    }

    fn pick<'a>(self, ru: &'a str, en: &'a str) -> &'a str {
        match self {
            Self::Ru => ru,
            Self::En => en,
        }
    }
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format3 {
    /// Excel workbook.
    Xlsx,
    /// CSV for Russian Excel.
    Csv,
    /// JSON.
    Json,
}

impl Format3 {
    /// Parses `xlsx`, `csv`, `json`.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "xlsx" => Ok(Self::Xlsx),
            "csv" => Ok(Self::Csv),
            "json" => Ok(Self::Json),
            _ => Err(format!("unknown format {s:?}: expected xlsx, csv or json")),
        }
    }

    /// The name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Xlsx => "xlsx",
            Self::Csv => "csv",
            Self::Json => "json",
        }
    }

    /// MIME type.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Self::Csv => "text/csv; charset=utf-8",
            Self::Json => "application/json",
        }
    }
}

/// A cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Text.
    Text(String),
    /// A whole number.
    Int(i64),
    /// A number (rates, shares, hours).
    Num(f64),
    /// Nothing.
    Empty,
}

impl From<&str> for Cell {
    fn from(s: &str) -> Self {
        Self::Text(s.to_owned())
    }
}

impl From<String> for Cell {
    fn from(s: String) -> Self {
        Self::Text(s)
    }
}

fn int(n: impl Into<i64>) -> Cell {
    Cell::Int(n.into())
}

fn uint(n: u64) -> Cell {
    Cell::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn num(x: Option<f64>) -> Cell {
    x.map_or(Cell::Empty, Cell::Num)
}

/// A table of the report.
#[derive(Debug, Clone, PartialEq)]
pub struct Sheet {
    /// Sheet name (≤ 31 characters).
    pub name: String,
    /// Column headings.
    pub headers: Vec<String>,
    /// Rows.
    pub rows: Vec<Vec<Cell>>,
}

/// The text of a status.
pub fn status_text(s: Status, lang: Lang) -> &'static str {
    match s {
        Status::Short => lang.pick("Недостаточно на балансе", "Short on the books"),
        Status::NotSeen => lang.pick("Не выходит на связь", "Not seen"),
        Status::Underused => lang.pick("Не используется", "Underused"),
        Status::Ok => lang.pick("Соответствует", "OK"),
    }
}

/// The text of an ЕСПД verdict.
pub fn verdict_text(v: &str, lang: Lang) -> &'static str {
    match v {
        "pass" => lang.pick("Соответствует", "Pass"),
        "fail" => lang.pick("Ниже требуемой", "Below the requirement"),
        _ => lang.pick("Нет измерений", "No measurements"),
    }
}

/// The name of a category in `lang` (its id when the profile lacks it).
pub fn category_name(profile: &Profile, id: &str, lang: Lang) -> String {
    profile
        .categories
        .iter()
        .find(|c| c.id == id)
        .map_or_else(|| id.to_owned(), |c| lang.pick(&c.name, &c.name_en).to_owned())
}

fn headers(list: &[(&str, &str)], lang: Lang) -> Vec<String> {
    list.iter().map(|(ru, en)| lang.pick(ru, en).to_owned()).collect()
}

/// The report's tables.
pub fn sheets(r: &ComplianceReport, profile: &Profile, lang: Lang) -> Vec<Sheet> {
    let cat = |id: &str| Cell::Text(category_name(profile, id, lang));
    let yes_no = |b: bool| Cell::from(if b { lang.pick("Да", "Yes") } else { lang.pick("Нет", "No") });
    let summary = Sheet {
        name: lang.pick("Итоги", "Summary").into(),
        headers: headers(
            &[
                ("Категория", "Category"),
                ("Требуется", "Required"),
                ("На балансе", "On the books"),
                ("На связи", "Seen"),
                ("Используется", "Used"),
                ("Школ в норме", "Schools OK"),
                ("Школ всего", "Schools"),
                ("Норматив подтверждён", "Quantity confirmed"),
            ],
            lang,
        ),
        rows: r
            .categories
            .iter()
            .map(|c| {
                vec![
                    cat(&c.category),
                    int(c.required),
                    int(c.on_books),
                    int(c.seen),
                    int(c.used),
                    int(c.schools_ok),
                    int(c.schools),
                    yes_no(c.confirmed),
                ]
            })
            .collect(),
    };
    let schools = Sheet {
        name: lang.pick("По школам", "By school").into(),
        headers: headers(
            &[
                ("Муниципалитет", "Municipality"),
                ("Код школы", "School id"),
                ("Школа", "School"),
                ("Категория", "Category"),
                ("Требуется", "Required"),
                ("На балансе", "On the books"),
                ("На связи", "Seen"),
                ("Используется", "Used"),
                ("Статус", "Status"),
            ],
            lang,
        ),
        rows: r
            .schools
            .iter()
            .map(|l| {
                vec![
                    l.municipality.as_str().into(),
                    l.school_id.as_str().into(),
                    l.school.as_str().into(),
                    cat(&l.category),
                    int(l.required),
                    int(l.on_books),
                    int(l.seen),
                    int(l.used),
                    status_text(l.status, lang).into(),
                ]
            })
            .collect(),
    };
    let unseen = Sheet {
        name: lang.pick("На балансе, не на связи", "On books, not seen").into(),
        headers: headers(
            &[
                ("Код школы", "School id"),
                ("Инвентарный номер", "Inventory number"),
                ("Категория", "Category"),
                ("Модель", "Model"),
                ("Серийный номер", "Serial number"),
                ("Кабинет", "Room"),
                ("Дата поступления", "Received"),
                ("Последний выход на связь", "Last seen"),
            ],
            lang,
        ),
        rows: r
            .on_books_not_seen
            .iter()
            .map(|i| {
                vec![
                    i.school_id.as_str().into(),
                    i.inventory_no.as_str().into(),
                    cat(&i.category),
                    i.model.as_str().into(),
                    i.serial.as_str().into(),
                    i.room.as_str().into(),
                    i.received.as_str().into(),
                    i.last_seen.as_str().into(),
                ]
            })
            .collect(),
    };
    let device_headers = headers(
        &[
            ("Код школы", "School id"),
            ("Устройство", "Device"),
            ("Категория", "Category"),
            ("Класс оборудования", "Equipment class"),
            ("Кабинет", "Room"),
            ("Последний выход на связь", "Last seen"),
            ("Часов использования", "Hours in use"),
            ("Страниц", "Pages"),
            ("Идентификатор устройства", "Device id"),
        ],
        lang,
    );
    let device_rows = |list: &[DeviceLine]| -> Vec<Vec<Cell>> {
        list.iter()
            .map(|d| {
                vec![
                    d.school_id.as_str().into(),
                    d.label.as_str().into(),
                    if d.category.is_empty() { Cell::Empty } else { cat(&d.category) },
                    d.class.as_str().into(),
                    d.room.as_str().into(),
                    d.last_seen.as_str().into(),
                    Cell::Num(d.in_use_hours),
                    uint(d.pages),
                    d.device_id.as_str().into(),
                ]
            })
            .collect()
    };
    let not_on_books = Sheet {
        name: lang.pick("На связи, не на балансе", "Seen, not on books").into(),
        headers: device_headers.clone(),
        rows: device_rows(&r.seen_not_on_books),
    };
    let never_used = Sheet {
        name: lang.pick("Не используется", "Never used").into(),
        headers: device_headers,
        rows: device_rows(&r.seen_never_used),
    };
    let espd = Sheet {
        name: lang.pick("ЕСПД", "ESPD").into(),
        headers: headers(
            &[
                ("Код школы", "School id"),
                ("Местность", "Locality"),
                ("Требуемая скорость, Мбит/с", "Required, Mbit/s"),
                ("Проверок", "Checks"),
                ("Доля успешных", "Share passed"),
                ("Тестов скорости", "Speed tests"),
                ("Медиана, Мбит/с", "Median, Mbit/s"),
                ("10-й процентиль, Мбит/с", "10th percentile, Mbit/s"),
                ("Вердикт", "Verdict"),
            ],
            lang,
        ),
        rows: r
            .espd
            .iter()
            .map(|e| {
                vec![
                    e.school_id.as_str().into(),
                    (if e.locality == "rural" {
                        lang.pick("село", "rural")
                    } else {
                        lang.pick("город", "urban")
                    })
                    .into(),
                    int(e.required_mbps),
                    uint(e.checks),
                    num(e.passed_share),
                    uint(e.download_tests),
                    num(e.download_median_mbps),
                    num(e.download_p10_mbps),
                    verdict_text(&e.verdict, lang).into(),
                ]
            })
            .collect(),
    };
    let m = &r.methodology;
    let kv = |ru: &str, en: &str, v: Cell| vec![Cell::from(lang.pick(ru, en)), v];
    let methodology = Sheet {
        name: lang.pick("Методика", "Methodology").into(),
        headers: headers(&[("Параметр", "Item"), ("Значение", "Value")], lang),
        rows: vec![
            kv("Профиль норм", "Norm profile", format!("{} {}", m.profile, m.profile_version).into()),
            kv("Наименование профиля", "Profile name", m.profile_name.as_str().into()),
            kv("Источники профиля", "Profile sources", m.profile_source.as_str().into()),
            kv("Охват", "Scope", m.scope.as_str().into()),
            kv("Период с", "Period from", m.from.as_str().into()),
            kv("Период по", "Period to", m.to.as_str().into()),
            kv("Данные по состоянию на", "Data cut-off", m.cutoff.as_str().into()),
            kv("«На связи»: дней до конца периода", "Seen: days before the period's end", int(m.seen_days)),
            kv("Отчётов ожидалось", "Reports expected", uint(m.ledger_expected)),
            kv("Отчётов получено", "Reports received", uint(m.ledger_received)),
            kv("Полнота данных", "Completeness", num(m.ledger_completeness)),
            kv(
                "Нормативы — региональные параметры",
                "Quantities that are regional parameters",
                m.regional_parameters
                    .iter()
                    .map(|c| category_name(profile, c, lang))
                    .collect::<Vec<_>>()
                    .join("; ")
                    .into(),
            ),
            kv("Сформировано", "Produced by", m.generator.as_str().into()),
        ],
    };
    vec![summary, schools, unseen, not_on_books, never_used, espd, methodology]
}

/// JSON export.
pub fn json(r: &ComplianceReport) -> Vec<u8> {
    // Serialising plain structs into a Vec cannot fail.
    let mut out = serde_json::to_vec_pretty(r).unwrap_or_default();
    out.push(b'\n');
    out
}

/// A text cell for CSV. Text a spreadsheet would take for a formula (`=`, `+`, `-`, `@`, a tab
/// or a carriage return first — an SNMP sysName of `=HYPERLINK(…)` ends up in a device label)
/// gets a leading `'`, as spreadsheet programs expect, so it stays text; numbers are separate
/// cells and keep their sign.
fn csv_text(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{s}") } else { s.to_owned() };
    if s.contains([';', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn csv_cell(c: &Cell, lang: Lang) -> String {
    match c {
        Cell::Text(s) => csv_text(s),
        Cell::Int(n) => n.to_string(),
        Cell::Num(x) => {
            let s = format!("{x}");
            if lang == Lang::Ru { s.replace('.', ",") } else { s }
        }
        Cell::Empty => String::new(),
    }
}

/// CSV export: every sheet as a titled section, sections separated by an empty line.
pub fn csv(sheets: &[Sheet], lang: Lang) -> Vec<u8> {
    let mut out = String::from("\u{feff}");
    for (i, s) in sheets.iter().enumerate() {
        if i > 0 {
            out.push_str("\r\n");
        }
        out.push_str(&csv_text(&s.name));
        out.push_str("\r\n");
        out.push_str(&s.headers.iter().map(|h| csv_text(h)).collect::<Vec<_>>().join(";"));
        out.push_str("\r\n");
        for row in &s.rows {
            out.push_str(&row.iter().map(|c| csv_cell(c, lang)).collect::<Vec<_>>().join(";"));
            out.push_str("\r\n");
        }
    }
    out.into_bytes()
}

/// Why an XLSX could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the XLSX: {0}")]
pub struct XlsxError(#[from] rust_xlsxwriter::XlsxError);

/// XLSX export. `created`: the workbook's creation time, from the report (the data cut-off),
/// not the clock.
pub fn xlsx(sheets: &[Sheet], title: &str, created: jiff::Timestamp) -> Result<Vec<u8>, XlsxError> {
    let mut wb = Workbook::new();
    let dt = jiff::tz::TimeZone::UTC.to_datetime(created);
    let when = ExcelDateTime::from_ymd(
        u16::try_from(dt.year()).unwrap_or(2000),
        dt.month().unsigned_abs(),
        dt.day().unsigned_abs(),
    )?
    .and_hms(
        u16::from(dt.hour().unsigned_abs()),
        u8::try_from(dt.minute()).unwrap_or(0),
        u8::try_from(dt.second()).unwrap_or(0),
    )?;
    wb.set_properties(
        &DocProperties::new().set_title(title).set_author("Parta").set_creation_datetime(&when),
    );
    let head = Format::new()
        .set_bold()
        .set_text_wrap()
        .set_align(FormatAlign::Top)
        .set_background_color(0x00DD_EBF7);
    let share = Format::new().set_num_format("0.00");
    for s in sheets {
        let ws = wb.add_worksheet();
        ws.set_name(&s.name)?;
        let mut widths: Vec<usize> = s.headers.iter().map(|h| h.chars().count().min(30)).collect();
        for (col, h) in s.headers.iter().enumerate() {
            ws.write_string_with_format(0, u16::try_from(col).unwrap_or(u16::MAX), h, &head)?;
        }
        for (i, row) in s.rows.iter().enumerate() {
            let r = u32::try_from(i + 1).unwrap_or(u32::MAX);
            for (col, cell) in row.iter().enumerate() {
                let c = u16::try_from(col).unwrap_or(u16::MAX);
                let len = match cell {
                    Cell::Text(t) => {
                        ws.write_string(r, c, t)?;
                        t.chars().count()
                    }
                    Cell::Int(n) => {
                        // Counts people read are far below 2^53.
                        #[allow(clippy::cast_precision_loss)]
                        ws.write_number(r, c, *n as f64)?;
                        n.to_string().len()
                    }
                    Cell::Num(x) => {
                        ws.write_number_with_format(r, c, *x, &share)?;
                        6
                    }
                    Cell::Empty => 0,
                };
                if let Some(w) = widths.get_mut(col) {
                    *w = (*w).max(len.min(60));
                }
            }
        }
        for (col, w) in widths.iter().enumerate() {
            #[allow(clippy::cast_precision_loss)] // a column width
            ws.set_column_width(u16::try_from(col).unwrap_or(u16::MAX), (*w as f64 + 2.0).max(8.0))?;
        }
        ws.set_freeze_panes(1, 0)?;
        if !s.headers.is_empty() {
            let last_row = u32::try_from(s.rows.len()).unwrap_or(u32::MAX);
            ws.autofilter(0, 0, last_row, u16::try_from(s.headers.len() - 1).unwrap_or(0))?;
        }
    }
    Ok(wb.save_to_buffer()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_never_start_a_formula() {
        let sheet = Sheet {
            name: "Видимые, но не на балансе".into(),
            headers: vec!["Устройство".into(), "Часы".into()],
            rows: vec![
                vec![Cell::Text("=HYPERLINK(\"http://evil.example\";\"x\")".into()), Cell::Num(-1.5)],
                vec![Cell::Text("+79001234567".into()), Cell::Int(-3)],
                vec![Cell::Text("-1+2".into()), Cell::Empty],
                vec![Cell::Text("@SUM(A1:A2)".into()), Cell::Empty],
                vec![Cell::Text("\t=1".into()), Cell::Empty],
                vec![Cell::Text("\r=1".into()), Cell::Empty],
                vec![Cell::Text("каб. 214".into()), Cell::Empty],
            ],
        };
        let text = String::from_utf8(csv(&[sheet], Lang::Ru)).unwrap();
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(lines[2], "\"'=HYPERLINK(\"\"http://evil.example\"\";\"\"x\"\")\";-1,5");
        assert_eq!(lines[3], "'+79001234567;-3");
        assert_eq!(lines[4], "'-1+2;");
        assert_eq!(lines[5], "'@SUM(A1:A2);");
        assert_eq!(lines[6], "'\t=1;");
        assert_eq!(lines[7], "\"'\r=1\";");
        assert_eq!(lines[8], "каб. 214;");
    }
}
