//! Arbitrary bytes as a session cookie, a Cookie header and an account scope: never a panic,
//! and a cookie value is accepted only if it is exactly what the key signs for the account.
#![no_main]

use libfuzzer_sys::fuzz_target;
use parta_collector::auth::{AccessScope, Accounts, parse_session};
use parta_collector::storage::accounts::UserRow;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = AccessScope::parse(&text);
    if let Ok(v) = axum::http::HeaderValue::from_bytes(data) {
        let mut h = axum::http::HeaderMap::new();
        h.insert(axum::http::header::COOKIE, v);
        let _ = parta_collector::web::cookie(&h, "parta_session");
    }
    let accounts = Accounts::new([42; 32]);
    let user = UserRow {
        login: "ivanova".into(),
        role: "ops".into(),
        scope: "region:74".into(),
        password_hash: String::new(),
        disabled: 0,
        created_at: 0,
        version: 7,
    };
    if let Some(p) = accounts.check_session(&text, 0, |login| (login == user.login).then(|| user.clone())) {
        let parts = parse_session(&text).expect("accepted values parse");
        assert_eq!(p.login, "ivanova");
        assert_eq!(accounts.session_value(&user, parts.expires), text, "only the genuine value is accepted");
    }
});
