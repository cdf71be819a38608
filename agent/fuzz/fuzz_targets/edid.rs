//! Arbitrary bytes as a monitor's EDID (read from sysfs, written by the monitor): parsing, and
//! deciding the display's size and class from what it states.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parta_agent::sources::{display, edid};

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = edid::parse(data) {
        let size = display::decide_size(&e);
        let _ = size.diagonal_decimal_in();
        let _ = display::decide_class(&size, &e.manufacturer, e.name.as_deref(), &display::PanelMakers::default());
    }
});
