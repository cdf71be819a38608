//! The school registry and the equipment register (the accounting inventory), as imported from
//! CSV: every row and column checked, every problem reported with its line and column, and
//! nothing returned unless the whole file is good — an import with errors changes nothing.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::csvin::{Column, Header, Problem, Record, Table, whole_number};
use super::profile::Profile;

/// A school of the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct School {
    /// Region code (`74`).
    pub region_code: String,
    /// Municipality.
    pub municipality: String,
    /// School id, as agents report it.
    pub school_id: String,
    /// Name.
    pub name: String,
    /// Address.
    pub address: String,
    /// `urban` or `rural`.
    pub locality: String,
    /// Pupils.
    pub pupils: u32,
    /// Teachers.
    pub teachers: u32,
    /// Administrative staff.
    pub admin_staff: u32,
    /// Classrooms.
    pub classrooms: u32,
    /// Buildings.
    pub buildings: u32,
}

impl School {
    /// The attributes norm expressions use, in [`super::expr::VARIABLES`] order.
    pub fn vars(&self) -> [f64; 5] {
        [self.pupils, self.teachers, self.admin_staff, self.classrooms, self.buildings].map(f64::from)
    }
}

/// Columns of the school registry.
pub const SCHOOL_COLUMNS: &[Column] = &[
    Column {
        field: "region_code", headings: &["Код региона", "Регион", "region"], required: true
    },
    Column {
        field: "municipality",
        headings: &["Муниципалитет", "Муниципальное образование", "МО"],
        required: true,
    },
    Column {
        field: "school_id", headings: &["Код школы", "Идентификатор школы", "school"], required: true
    },
    Column {
        field: "name", headings: &["Наименование", "Название", "Наименование ОО"], required: true
    },
    Column { field: "address", headings: &["Адрес"], required: false },
    Column {
        field: "locality", headings: &["Местность", "Тип местности", "Город/село"], required: true
    },
    Column {
        field: "pupils", headings: &["Обучающихся", "Число обучающихся", "Учащихся"], required: true
    },
    Column {
        field: "teachers", headings: &["Педагогов", "Число педагогов", "Учителей"], required: true
    },
    Column {
        field: "admin_staff",
        headings: &["Административный персонал", "АУП", "Администрация"],
        required: true,
    },
    Column {
        field: "classrooms",
        headings: &["Кабинетов", "Учебных кабинетов", "Классов-комплектов"],
        required: false,
    },
    Column {
        field: "buildings", headings: &["Зданий", "Число зданий", "Корпусов"], required: true
    },
];

/// `urban` or `rural` from what people write; ПГТ counts with rural (the national project's
/// methodology puts them together).
fn locality(s: &str) -> Result<&'static str, String> {
    match super::csvin::name_key(s).as_str() {
        "urban" | "город" | "городская" | "городской" | "г" => Ok("urban"),
        "rural"
        | "село"
        | "сельская"
        | "сельский"
        | "сельская местность"
        | "пгт"
        | "поселок городского типа" => Ok("rural"),
        _ => Err("expected urban/город or rural/село/ПГТ".into()),
    }
}

/// A problem at a cell.
fn cell_problem(h: &Header, r: &Record, i: usize, field: &str, message: impl Into<String>) -> Problem {
    Problem {
        line: r.line,
        column: h.name(i, field),
        value: h.cell(r, i).to_owned(),
        message: message.into(),
    }
}

/// Required non-empty text of column `i`.
fn text(h: &Header, r: &Record, i: usize, spec: &[Column], out: &mut Vec<Problem>) -> String {
    let v = h.cell(r, i);
    if v.is_empty() && spec[i].required {
        out.push(cell_problem(h, r, i, spec[i].field, "empty: required"));
    }
    v.to_owned()
}

/// The schools of a registry file, or every problem in it.
pub fn parse_schools(table: &Table) -> Result<Vec<School>, Vec<Problem>> {
    let spec = SCHOOL_COLUMNS;
    let h = Header::map(&table.header, spec)?;
    if table.records.is_empty() {
        return Err(vec![no_rows()]);
    }
    let mut problems = Vec::new();
    let mut schools = Vec::with_capacity(table.records.len());
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for r in &table.records {
        let p = &mut problems;
        let number = |i: usize, p: &mut Vec<Problem>, min: u32| -> u32 {
            let v = h.cell(r, i);
            if v.is_empty() && !spec[i].required {
                return 0;
            }
            match whole_number(v) {
                Ok(n) if n >= min => n,
                Ok(_) => {
                    p.push(cell_problem(&h, r, i, spec[i].field, format!("at least {min} expected")));
                    0
                }
                Err(e) => {
                    p.push(cell_problem(&h, r, i, spec[i].field, e));
                    0
                }
            }
        };
        let region_code = text(&h, r, 0, spec, p);
        let region_ok = region_code.len() <= 3 && region_code.bytes().all(|b| b.is_ascii_digit());
        if !region_code.is_empty() && !region_ok {
            p.push(cell_problem(&h, r, 0, "region_code", "expected the region's number, e.g. 74"));
        }
        let school_id = text(&h, r, 2, spec, p);
        if !school_id.is_empty() {
            if let Err(e) = parta_protocol::validate::validate_school_id(&school_id) {
                p.push(cell_problem(&h, r, 2, "school_id", e.to_string()));
            } else if let Some(first) = seen.insert(school_id.clone(), r.line) {
                p.push(cell_problem(
                    &h,
                    r,
                    2,
                    "school_id",
                    format!("school id given twice (first on line {first})"),
                ));
            }
        }
        let loc = match locality(h.cell(r, 5)) {
            Ok(l) => l,
            Err(e) => {
                p.push(cell_problem(&h, r, 5, "locality", e));
                ""
            }
        };
        let school = School {
            region_code,
            municipality: text(&h, r, 1, spec, p),
            school_id,
            name: text(&h, r, 3, spec, p),
            address: h.cell(r, 4).to_owned(),
            locality: loc.to_owned(),
            pupils: number(6, p, 0),
            teachers: number(7, p, 0),
            admin_staff: number(8, p, 0),
            classrooms: number(9, p, 0),
            buildings: number(10, p, 1),
        };
        schools.push(school);
    }
    if problems.is_empty() { Ok(schools) } else { Err(problems) }
}

fn no_rows() -> Problem {
    Problem {
        line: 0,
        column: String::new(),
        value: String::new(),
        message: "no data rows after the header".into(),
    }
}

/// An item of the equipment register.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegisterItem {
    /// Line in the imported file.
    pub line: u32,
    /// Inventory number.
    pub inventory_no: String,
    /// Category id of the profile.
    pub category: String,
    /// Vendor.
    pub vendor: String,
    /// Model.
    pub model: String,
    /// Serial number as written.
    pub serial: String,
    /// MAC address, `aa:bb:cc:dd:ee:ff` (empty when none).
    pub mac: String,
    /// School id.
    pub school_id: String,
    /// Room.
    pub room: String,
    /// Date received, `YYYY-MM-DD` (empty when not given).
    pub received: String,
    /// Funding programme.
    pub funding: String,
}

/// Columns of the equipment register.
pub const REGISTER_COLUMNS: &[Column] = &[
    Column {
        field: "inventory_no",
        headings: &["Инвентарный номер", "Инв. номер", "Инв номер"],
        required: true,
    },
    Column {
        field: "category", headings: &["Категория", "Вид оборудования", "Тип"], required: true
    },
    Column {
        field: "vendor", headings: &["Производитель", "Изготовитель"], required: false
    },
    Column { field: "model", headings: &["Модель"], required: false },
    Column {
        field: "serial", headings: &["Серийный номер", "Заводской номер", "S/N"], required: true
    },
    Column { field: "mac", headings: &["MAC", "MAC-адрес"], required: false },
    Column { field: "school_id", headings: &["Код школы", "Школа", "school"], required: true },
    Column { field: "room", headings: &["Кабинет", "Помещение"], required: false },
    Column {
        field: "received", headings: &["Дата поступления", "Дата получения", "Дата"], required: false
    },
    Column {
        field: "funding",
        headings: &["Программа", "Источник финансирования", "Финансирование"],
        required: false,
    },
];

/// A serial number in comparable form: letters and digits only, upper case. Empty and
/// placeholder serials (`To be filled by O.E.M.`, `0`, `1234567890`, `16843009`: the same in
/// every unit of a model) give an empty key: they never match.
pub fn serial_key(s: &str) -> String {
    parta_common::serial::unit_key(s)
}

/// A MAC address as `aa:bb:cc:dd:ee:ff` from `AA-BB-…`, `aabb.ccdd.eeff` or plain hex.
pub fn mac_key(s: &str) -> Option<String> {
    let hex: String = s.chars().filter(|c| !matches!(c, ':' | '-' | '.' | ' ')).collect();
    if hex.len() != 12 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let hex = hex.to_ascii_lowercase();
    Some((0..6).map(|i| &hex[i * 2..i * 2 + 2]).collect::<Vec<_>>().join(":"))
}

/// A date people wrote: `ДД.ММ.ГГГГ` or `ГГГГ-ММ-ДД`, as `YYYY-MM-DD`.
pub fn date(s: &str) -> Result<String, String> {
    let (y, m, d) = if let Some((d, rest)) = s.split_once('.') {
        let (m, y) = rest.split_once('.').ok_or("expected ДД.ММ.ГГГГ or ГГГГ-ММ-ДД")?;
        (y, m, d)
    } else {
        let mut p = s.splitn(3, '-');
        match (p.next(), p.next(), p.next()) {
            (Some(y), Some(m), Some(d)) => (y, m, d),
            _ => return Err("expected ДД.ММ.ГГГГ or ГГГГ-ММ-ДД".into()),
        }
    };
    let n = |t: &str| t.trim().parse::<i16>().ok();
    match (n(y), n(m), n(d)) {
        (Some(y), Some(m), Some(d)) if (1990..=2100).contains(&y) => {
            let i8m = i8::try_from(m).ok().ok_or("no such date")?;
            let i8d = i8::try_from(d).ok().ok_or("no such date")?;
            let date = jiff::civil::Date::new(y, i8m, i8d).map_err(|_| "no such date".to_owned())?;
            Ok(date.to_string())
        }
        _ => Err("expected ДД.ММ.ГГГГ or ГГГГ-ММ-ДД (a year 1990–2100)".into()),
    }
}

/// The items of a register file, or every problem in it. `schools`: ids in the registry;
/// `profile`: whose categories the register may name.
pub fn parse_register(
    table: &Table,
    schools: &BTreeSet<String>,
    profile: &Profile,
) -> Result<Vec<RegisterItem>, Vec<Problem>> {
    let spec = REGISTER_COLUMNS;
    let h = Header::map(&table.header, spec)?;
    if table.records.is_empty() {
        return Err(vec![no_rows()]);
    }
    let mut problems = Vec::new();
    let mut items = Vec::with_capacity(table.records.len());
    let mut numbers: BTreeMap<String, usize> = BTreeMap::new();
    for r in &table.records {
        let p = &mut problems;
        let inventory_no = text(&h, r, 0, spec, p);
        if !inventory_no.is_empty()
            && let Some(first) = numbers.insert(inventory_no.clone(), r.line)
        {
            p.push(cell_problem(
                &h,
                r,
                0,
                "inventory_no",
                format!("inventory number given twice (first on line {first})"),
            ));
        }
        let category = match h.cell(r, 1) {
            "" => {
                p.push(cell_problem(&h, r, 1, "category", "empty: required"));
                String::new()
            }
            name => match profile.category_by_name(name) {
                Some(c) => c.id.clone(),
                None => {
                    p.push(cell_problem(
                        &h,
                        r,
                        1,
                        "category",
                        format!(
                            "unknown category in profile {} (known: {})",
                            profile.id,
                            profile.categories.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join("; ")
                        ),
                    ));
                    String::new()
                }
            },
        };
        let serial = h.cell(r, 4).to_owned();
        let mac = match h.cell(r, 5) {
            "" => String::new(),
            m => mac_key(m).unwrap_or_else(|| {
                p.push(cell_problem(
                    &h,
                    r,
                    5,
                    "mac",
                    "not a MAC address (expected 6 bytes in hex, e.g. 00:1b:21:3a:4c:5d)",
                ));
                String::new()
            }),
        };
        if serial_key(&serial).is_empty() && mac.is_empty() {
            let why = if serial.trim().is_empty()
                || parta_common::serial::key(&serial).chars().all(|c| c == '0')
            {
                "no serial number (or MAC): the item could never be matched to a device"
            } else {
                "a placeholder that every unit of a model carries, not a serial number, and no MAC: the item \
                 could never be matched to a device"
            };
            p.push(cell_problem(&h, r, 4, "serial", why));
        }
        let school_id = text(&h, r, 6, spec, p);
        if !school_id.is_empty() && !schools.contains(&school_id) {
            p.push(cell_problem(
                &h,
                r,
                6,
                "school_id",
                "school not in the registry (import it with `schools import` first)",
            ));
        }
        let received = match h.cell(r, 8) {
            "" => String::new(),
            d => date(d).unwrap_or_else(|e| {
                p.push(cell_problem(&h, r, 8, "received", e));
                String::new()
            }),
        };
        items.push(RegisterItem {
            line: u32::try_from(r.line).unwrap_or(u32::MAX),
            inventory_no,
            category,
            vendor: h.cell(r, 2).to_owned(),
            model: h.cell(r, 3).to_owned(),
            serial,
            mac,
            school_id,
            room: h.cell(r, 7).to_owned(),
            received,
            funding: h.cell(r, 9).to_owned(),
        });
    }
    if problems.is_empty() { Ok(items) } else { Err(problems) }
}

#[cfg(test)]
mod tests {
    use super::super::csvin::{Delimiter, Encoding, read};
    use super::super::profile;
    use super::*;

    const HEADER: &str = "Код региона;Муниципалитет;Код школы;Наименование;Адрес;Местность;Обучающихся;Педагогов;АУП;Кабинетов;Зданий\n";

    fn schools(body: &str) -> Result<Vec<School>, Vec<String>> {
        let t = read(format!("{HEADER}{body}").as_bytes(), Encoding::Auto, Delimiter::Auto).unwrap();
        parse_schools(&t).map_err(|p| p.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn a_good_registry_reads() {
        let s = schools("74;Копейский ГО;74-0012;МОУ СОШ № 1;ул. Ленина, 1;город;1 020;61;8;40;2\n74;Аргаяшский МР;74-0345;МОУ Аргаяшская СОШ;;село;180;17;3;;1\n").unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].pupils, s[0].locality.as_str(), s[0].buildings), (1020, "urban", 2));
        assert_eq!((s[1].classrooms, s[1].locality.as_str()), (0, "rural"));
    }

    #[test]
    fn every_bad_cell_is_named() {
        let err = schools(
            "74;Копейский ГО;74-0012;СОШ 1;;город;1,5;61;8;40;2\n\
             7x;Копейский ГО;74-0013;;;деревня;100;10;2;10;0\n\
             74;Копейский ГО;74-0012;СОШ 1 (дубль);;город;10;1;1;1;1\n",
        )
        .unwrap_err();
        assert_eq!(
            err,
            [
                "line 2: column «Обучающихся» («1,5»): not a whole number (a decimal fraction?)",
                "line 3: column «Код региона» («7x»): expected the region's number, e.g. 74",
                "line 3: column «Местность» («деревня»): expected urban/город or rural/село/ПГТ",
                "line 3: column «Наименование»: empty: required",
                "line 3: column «Зданий» («0»): at least 1 expected",
                "line 4: column «Код школы» («74-0012»): school id given twice (first on line 2)",
            ]
        );
        let t = read(b"region_code;school_id\n74;1\n", Encoding::Auto, Delimiter::Auto).unwrap();
        let missing: Vec<String> = parse_schools(&t).unwrap_err().iter().map(|p| p.column.clone()).collect();
        assert_eq!(
            missing,
            ["municipality", "name", "locality", "pupils", "teachers", "admin_staff", "buildings"]
        );
        assert_eq!(schools("").unwrap_err(), ["no data rows after the header"]);
    }

    #[test]
    fn register_items_are_checked_against_the_registry_and_profile() {
        let all = profile::load_all(None).unwrap();
        let p = profile::find(&all, profile::DEFAULT_PROFILE).unwrap();
        let known: BTreeSet<String> = ["74-0012".to_owned()].into();
        let t = read(
            "Инвентарный номер;Категория;Производитель;Модель;Серийный номер;MAC;Код школы;Кабинет;Дата поступления;Программа\n\
             0101;Ноутбук педагога;Aquarius;NS685U;AQ-T-0101;;74-0012;214;01.09.2021;ЦОС\n\
             0102;Кофеварка;;;AQ-T-0102;;74-0012;;;\n\
             0101;МФУ;;;;00-1B-21-3A-4C-5D;74-9999;;31.02.2022;\n\
             0104;МФУ;;;To be filled by O.E.M.;;74-0012;;2022-03-01;\n\
             0105;МФУ;;;16843009;;74-0012;;2022-03-01;\n"
                .as_bytes(),
            Encoding::Auto,
            Delimiter::Auto,
        )
        .unwrap();
        let err: Vec<String> =
            parse_register(&t, &known, p).unwrap_err().iter().map(ToString::to_string).collect();
        assert_eq!(err.len(), 6, "{err:#?}");
        assert!(
            err[0].starts_with(
                "line 3: column «Категория» («Кофеварка»): unknown category in profile cos-2021"
            ),
            "{}",
            err[0]
        );
        assert_eq!(
            err[1],
            "line 4: column «Инвентарный номер» («0101»): inventory number given twice (first on line 2)"
        );
        assert_eq!(
            err[2],
            "line 4: column «Код школы» («74-9999»): school not in the registry (import it with `schools import` first)"
        );
        assert_eq!(err[3], "line 4: column «Дата поступления» («31.02.2022»): no such date");
        assert_eq!(
            err[4],
            "line 5: column «Серийный номер» («To be filled by O.E.M.»): a placeholder that every unit of a model carries, not a serial number, and no MAC: the item could never be matched to a device"
        );
        assert_eq!(
            err[5],
            "line 6: column «Серийный номер» («16843009»): a placeholder that every unit of a model carries, not a serial number, and no MAC: the item could never be matched to a device"
        );
        let good = read(
            "inventory_no,category,serial,mac,school_id,received\n0101,teacher_laptop,SN-1,00-1B-21-3A-4C-5D,74-0012,2021-09-01\n".as_bytes(),
            Encoding::Auto,
            Delimiter::Auto,
        )
        .unwrap();
        let items = parse_register(&good, &known, p).unwrap();
        assert_eq!((items[0].mac.as_str(), items[0].received.as_str()), ("00:1b:21:3a:4c:5d", "2021-09-01"));
    }

    #[test]
    fn keys_for_matching() {
        assert_eq!(serial_key(" pf-3x 9k1 "), "PF3X9K1");
        assert_eq!(serial_key("To Be Filled By O.E.M."), "");
        assert_eq!(serial_key("000000"), "");
        assert_eq!(mac_key("001B.213A.4C5D").as_deref(), Some("00:1b:21:3a:4c:5d"));
        assert_eq!(mac_key("00:1b:21:3a:4c"), None);
        assert_eq!(date("1.9.2021").as_deref(), Ok("2021-09-01"));
        assert!(date("2021/09/01").is_err());
    }
}
