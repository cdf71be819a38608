//! Arbitrary bytes as an imported CSV file: a table or a named error, then the registry and
//! register checks on it: schools or problems, never a panic. The first byte picks the
//! encoding and separator handling.
#![no_main]

use std::collections::BTreeSet;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use parta_collector::compliance::csvin::{self, Delimiter, Encoding};
use parta_collector::compliance::profile::{self, Profile};
use parta_collector::compliance::registry;

fn profile() -> &'static Profile {
    static P: OnceLock<Profile> = OnceLock::new();
    P.get_or_init(|| {
        let all = profile::load_all(None).expect("the shipped profile loads");
        profile::find(&all, profile::DEFAULT_PROFILE).expect("the default profile exists").clone()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else { return };
    let encoding = [Encoding::Auto, Encoding::Utf8, Encoding::Cp1251][usize::from(mode % 3)];
    let delimiter = [Delimiter::Auto, Delimiter::Char(';'), Delimiter::Char(',')][usize::from(mode / 3 % 3)];
    let Ok(table) = csvin::read(bytes, encoding, delimiter) else { return };
    for r in &table.records {
        assert!(r.line >= table.header.line);
    }
    match registry::parse_schools(&table) {
        Ok(schools) => assert_eq!(schools.len(), table.records.len()),
        Err(problems) => assert!(!problems.is_empty()),
    }
    let known: BTreeSet<String> = ["74-0012".to_owned()].into();
    if let Err(problems) = registry::parse_register(&table, &known, profile()) {
        assert!(!problems.is_empty());
    }
});
