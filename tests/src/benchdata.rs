//! Synthetic regional data for the benchmarks, generated inside ClickHouse (`system.numbers`)
//! so that millions of rows load in seconds: the same schools, device ids and ЕСПД rounds for
//! every benchmark that needs a region.

use parta_collector::compliance::registry::School;

/// The first day of generated data (2026-08-25, days since 1970-01-01).
pub const FIRST_DAY: i64 = 20_690;

/// The school id of school number `s` (`74-10000` …).
pub fn school_id(s: u64) -> String {
    format!("74-{}", 10_000 + s)
}

/// The registry of a region of `schools` schools in 40 municipalities: every third school
/// rural, sizes varying from school to school.
pub fn registry(schools: u64) -> Vec<School> {
    (0..schools)
        .map(|s| School {
            region_code: "74".into(),
            municipality: format!("Муниципалитет {}", s % 40),
            school_id: school_id(s),
            name: format!("МОУ СОШ № {s}"),
            address: format!("ул. Школьная, {s}"),
            locality: if s % 3 == 0 { "rural" } else { "urban" }.into(),
            pupils: 100 + u32::try_from(s * 37 % 1500).unwrap(),
            teachers: 10 + u32::try_from(s % 60).unwrap(),
            admin_staff: 3,
            classrooms: 10 + u32::try_from(s % 40).unwrap(),
            buildings: 1 + u32::try_from(s % 3).unwrap(),
        })
        .collect()
}

/// [`school_id`] in SQL, of a number column.
pub fn sql_school(col: &str) -> String {
    format!("concat('74-', toString(10000 + {col}))")
}

/// The SQL of a device id from a number column: `00000000-0000-0000-0000-<12 hex digits>`.
pub fn sql_uuid(col: &str) -> String {
    format!(
        "toUUID(concat('00000000-0000-0000-0000-', substring(concat('000000000000', hex({col})), length(hex({col})) + 1, 12)))"
    )
}

/// An `INSERT … SELECT` of `days` days of ЕСПД checks for `schools` schools into
/// `db.connectivity_checks`: 36 rounds a day from 08:00 every 15 minutes (DNS, two HTTP,
/// latency), speed tests every 4 hours; every third school rural (50 Mbit/s required), every
/// fourth below contract (40 Mbit/s), one check in 29 failing. `poller` is the SQL of the
/// polling device's number from the school number `s`.
pub fn espd_checks_sql(db: &str, schools: u64, days: u64, poller: &str) -> String {
    format!(
        "INSERT INTO {db}.connectivity_checks (device_id, school_id, seq, run_started_at_ms, ts, local_day, trigger, locality,
            required_mbps, check_no, kind, target, outcome, bits_per_s, ip_bits_per_s)
         SELECT {poller}, {school}, day * 36 + r + 1, toInt64(({FIRST_DAY} + day) * 86400 + 28800 + r * 900) * 1000,
            toDateTime(({FIRST_DAY} + day) * 86400 + 28800 + r * 900), toDate({FIRST_DAY} + day), 'scheduled',
            if(s % 3 = 0, 'rural', 'urban'), if(s % 3 = 0, 50, 100), c,
            ['dns', 'http', 'http', 'latency', 'download', 'upload'][c + 1], 'https://gosuslugi.ru/',
            if(c = 4 AND s % 4 = 1, 'slow', if((s + day + r + c) % 29 = 0, 'tcp_failed', 'ok')),
            if(c >= 4, toUInt64(if(s % 4 = 1, 40, 120) * 1000000), 0),
            if(c >= 4, toUInt64(if(s % 4 = 1, 41, 123) * 1000000), 0)
         FROM (SELECT intDiv(number, {days} * 36 * 6) AS s, intDiv(number, 36 * 6) % {days} AS day,
                      intDiv(number, 6) % 36 AS r, number % 6 AS c
               FROM system.numbers LIMIT {rows})
         WHERE c < 4 OR r % 16 = 0",
        poller = sql_uuid(poller),
        school = sql_school("s"),
        rows = schools * days * 36 * 6
    )
}
