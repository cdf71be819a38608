//! Attacks on the web UI's and the API's access control, on a real collector and ClickHouse,
//! over plain HTTP (issue 19):
//!
//! - sign-in guessing: five wrong passwords lock a login from that address (not from others);
//!   parallel guesses count before their passwords are checked; one address trying many logins
//!   is stopped; `X-Forwarded-For` counts only from a configured proxy;
//! - an API token ends with its account's password, role or scope, and never opens the UI;
//! - signing out ends the session on the server: a copied cookie no longer works;
//! - looking at or exporting a compliance report changes nothing; updating the overview's
//!   verdicts is a POST with the session's CSRF token, refused to auditors;
//! - municipality scopes name their region: two regions' «Октябрьский район» are two scopes, an
//!   account written with the bare name sees nothing and is flagged.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use parta_tests::clickhouse::ClickHouse;
use parta_tests::procs::Collector;
use parta_tests::util::{artifacts_dir, wait_for};
use parta_tests::websession::{Session, hidden};

const PASSWORD: &str = "correct horse battery";
const OKT: &str = "Октябрьский район";

const REGISTRY: &str = "Код региона;Муниципалитет;Код школы;Наименование;Адрес;Местность;Обучающихся;Педагогов;Административный персонал;Кабинетов;Зданий
74;Октябрьский район;74-0500;МОУ Октябрьская СОШ;с. Октябрьское, ул. Школьная, 1;село;300;2;1;14;1
66;Октябрьский район;66-0500;МОУ СОШ № 5 (Свердловская обл.);р. п. Октябрьский, ул. Ленина, 5;село;250;2;1;12;1
74;Ашинский муниципальный район;74-0600;МОУ СОШ № 1 г. Аши;г. Аша, ул. Мира, 1;город;900;4;2;36;1
";

fn output(c: &Collector, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write as _;
    let mut child = c
        .command()
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        writeln!(input, "{s}").unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn run(c: &Collector, args: &[&str]) -> String {
    let out = output(c, args, None);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn urlencode(s: &str) -> String {
    parta_collector::web::urlencode(s)
}

/// GET with an API token (no redirects followed): status and body.
fn get_with_token(c: &Collector, token: &str, path: &str) -> (u16, String) {
    let mut s = Session::new(c);
    s.headers.push(("Authorization".into(), format!("Bearer {token}")));
    s.get(path)
}

fn collector(name: &str, ch: &ClickHouse, db: &str) -> Collector {
    let art = artifacts_dir(name);
    // Requests come "through a proxy" on loopback, so that a test can speak from many
    // addresses; a proxy is trusted only when configured.
    let c = Collector::start_with(ch, db, &art, &[("PARTA_WEB_TRUSTED_PROXIES", "127.0.0.1")]);
    let registry = art.join("schools.csv");
    std::fs::write(&registry, REGISTRY).unwrap();
    run(&c, &["schools", "import", &registry.display().to_string()]);
    c
}

#[test]
fn sign_in_guessing_is_counted_before_checking_per_login_and_address() {
    let ch = ClickHouse::start();
    let c = collector("access_guessing", &ch, "parta_guess");
    c.add_user("ops-74", "ops", "region:74", PASSWORD);
    c.add_user("ops-66", "ops", "region:66", PASSWORD);

    // Five wrong passwords from one address: the sixth try is refused even with the right
    // password, from that address only.
    let mut from_a = Session::from_address(&c, "10.0.0.1");
    for _ in 0..5 {
        assert_eq!(from_a.sign_in("ops-74", "wrong password!"), 401);
    }
    assert_eq!(from_a.sign_in("ops-74", PASSWORD), 429, "locked from 10.0.0.1");
    let (_, page) = from_a.get("/login");
    assert!(page.contains("login") || page.contains("Вход"), "the form is still served");
    assert_eq!(
        Session::from_address(&c, "10.0.0.2").sign_in("ops-74", PASSWORD),
        303,
        "others are not locked out"
    );

    // Twelve guesses at once: each counts before its password is checked, so no more than five
    // are checked; the rest are refused; then the right password is refused too.
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..12)
            .map(|i| {
                let c = &c;
                s.spawn(move || {
                    Session::from_address(c, "10.0.0.3").sign_in("ops-66", &format!("guess number {i}"))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut checked = statuses.iter().filter(|s| **s == 401).count();
    assert!(checked <= 5, "at most five guesses checked: {statuses:?}");
    assert!(statuses.iter().all(|s| *s == 401 || *s == 429), "{statuses:?}");
    // (Guesses refused as busy were not checked and do not count.) More guesses, one by one,
    // until the lock: five checked in all.
    let mut guesser = Session::from_address(&c, "10.0.0.3");
    while guesser.sign_in("ops-66", "one more guess") == 401 {
        checked += 1;
        assert!(checked <= 5, "a sixth guess was checked");
    }
    assert_eq!(checked, 5, "{statuses:?}");
    assert_eq!(Session::from_address(&c, "10.0.0.3").sign_in("ops-66", PASSWORD), 429);

    // One address trying many logins (one wrong password each): stopped after twenty.
    let mut spray = Session::from_address(&c, "10.0.0.4");
    for i in 0..20 {
        assert_eq!(spray.sign_in(&format!("teacher{i}"), "Qwerty123456"), 401, "attempt {i}");
    }
    assert_eq!(spray.sign_in("ops-74", PASSWORD), 429, "the address is stopped, whatever the login");

    // A header from a peer that is not a configured proxy counts for nothing: a collector
    // without trusted proxies sees every attempt as 127.0.0.1, whatever it claims.
    let db2 = "parta_guess_direct";
    let direct = Collector::start(&ch, db2, &artifacts_dir("access_guessing_direct"));
    direct.add_user("ops-74", "ops", "all", PASSWORD);
    for i in 0..5 {
        let mut s = Session::from_address(&direct, &format!("192.0.2.{i}"));
        assert_eq!(s.sign_in("ops-74", "wrong password!"), 401);
    }
    assert_eq!(
        Session::from_address(&direct, "192.0.2.200").sign_in("ops-74", PASSWORD),
        429,
        "X-Forwarded-For from an untrusted peer does not give a guesser new addresses"
    );
    let log = c.log();
    assert!(!log.contains(PASSWORD) && !log.contains("guess number"), "passwords are never logged");
}

#[test]
fn tokens_sessions_status_and_scopes() {
    let ch = ClickHouse::start();
    let db = "parta_access";
    let c = collector("access", &ch, db);
    c.add_user("admin", "admin", "all", PASSWORD);
    c.add_user("auditor-74", "auditor", "region:74", PASSWORD);

    // --- Municipality scopes name their region. ---
    let refused = output(
        &c,
        &[
            "user",
            "add",
            "ops-okt",
            "--role",
            "ops",
            "--scope",
            &format!("municipality:{OKT}"),
            "--password-stdin",
        ],
        Some(PASSWORD),
    );
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("66, 74") && err.contains(&format!("municipality:66/{OKT}")), "{err}");
    c.add_user("ops-okt", "ops", &format!("municipality:74/{OKT}"), PASSWORD);
    // A bare name only one region has is stored with its region.
    c.add_user("ops-asha", "ops", "municipality:Ашинский муниципальный район", PASSWORD);
    let list = run(&c, &["user", "list"]);
    assert!(list.contains("municipality:74/Ашинский муниципальный район"), "{list}");

    let mut okt = Session::new(&c);
    assert_eq!(okt.sign_in("ops-okt", PASSWORD), 303);
    let (status, page) = okt.get(&format!("/m/74/{}", urlencode(OKT)));
    assert_eq!(status, 200);
    assert!(page.contains("74-0500") && !page.contains("66-0500"), "{page}");
    for path in [format!("/m/66/{}", urlencode(OKT)), "/s/66-0500".into(), "/s/74-0600".into()] {
        assert_eq!(okt.get(&path).0, 403, "{path}");
    }
    let okt_token = c.api_token("ops-okt");
    let api = |token: &str, scope: &str| {
        get_with_token(&c, token, &format!("/api/v1/compliance?scope={}&format=json", urlencode(scope)))
    };
    assert_eq!(api(&okt_token, &format!("municipality:74/{OKT}")).0, 200);
    assert_eq!(api(&okt_token, &format!("municipality:66/{OKT}")).0, 403);
    let (status, body) = api(&okt_token, &format!("municipality:{OKT}"));
    assert_eq!(status, 400, "an ambiguous report scope is refused, naming the regions: {body}");
    assert!(body.contains("66, 74"), "{body}");

    // An account stored before scopes named regions: it sees nothing, and says why.
    ch.query(&format!(
        "INSERT INTO {db}_auth.users SELECT login, role, 'municipality:{OKT}', password_hash, disabled, created_at, version + 1 \
         FROM {db}_auth.users WHERE login = 'ops-okt'"
    ));
    let mut old = Session::new(&c);
    wait_for(Duration::from_secs(30), "the old scope to be read", || {
        // The signature of the old cookie names the old version: it ends.
        (okt.get("/").0 == 303).then_some(())
    });
    assert_eq!(
        api(&okt_token, &format!("municipality:74/{OKT}")).0,
        401,
        "the scope changed: its token ended"
    );
    assert_eq!(old.sign_in("ops-okt", PASSWORD), 303);
    let (status, page) = old.get("/");
    assert_eq!(status, 200);
    assert!(
        page.contains("scope-unresolved") && !page.contains("href=\"/m/"),
        "sees no school, and why: {page}"
    );
    assert_eq!(old.get(&format!("/m/74/{}", urlencode(OKT))).0, 403);
    assert_eq!(old.get(&format!("/m/66/{}", urlencode(OKT))).0, 403);
    let list = run(&c, &["user", "list"]);
    assert!(list.contains("! sees no school") && list.contains("66, 74"), "{list}");
    wait_for(Duration::from_secs(30), "a warning in the log", || {
        c.log().contains("sees no school").then_some(())
    });

    // --- A token lives as long as its account is unchanged, and never opens the UI. ---
    let asha_token = c.api_token("ops-asha");
    assert_eq!(get_with_token(&c, &asha_token, "/api/v1/schools/74-0600/utilization").0, 200);
    let (status, _, location) = {
        let mut s = Session::new(&c);
        s.headers.push(("Authorization".into(), format!("Bearer {asha_token}")));
        s.get_with_location("/")
    };
    assert!(status == 303 && location.starts_with("/login"), "a token is no UI session: {status} {location}");
    let out = output(&c, &["user", "passwd", "ops-asha"], Some("a brand new password"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    wait_for(Duration::from_secs(30), "the token to end with the password", || {
        (get_with_token(&c, &asha_token, "/api/v1/schools/74-0600/utilization").0 == 401).then_some(())
    });
    let fresh = c.api_token("ops-asha");
    assert_eq!(get_with_token(&c, &fresh, "/api/v1/schools/74-0600/utilization").0, 200, "a new token works");
    // A token cannot mint tokens through the UI's form (it has no session, hence no CSRF value).
    let tokens_of_asha = || {
        ch.query_u64(&format!(
            "SELECT uniqExact(token_id) FROM {db}_auth.api_tokens WHERE login = 'ops-asha'"
        ))
    };
    let before = tokens_of_asha();
    let mut minting = Session::new(&c);
    minting.headers.push(("Authorization".into(), format!("Bearer {fresh}")));
    for csrf in ["", "0000000000000000"] {
        let (status, _) = minting.post("/tokens", &[("csrf", csrf), ("comment", "minted by a token")]);
        assert!(status == 303 || status == 403, "{status}");
    }
    assert_eq!(tokens_of_asha(), before, "no token minted");
    // Disabled, then added again: the old token stays dead.
    run(&c, &["user", "disable", "ops-asha"]);
    wait_for(Duration::from_secs(30), "the token to end with the account", || {
        (get_with_token(&c, &fresh, "/api/v1/schools/74-0600/utilization").0 == 401).then_some(())
    });
    c.add_user("ops-asha", "ops", "municipality:74/Ашинский муниципальный район", PASSWORD);
    assert_eq!(Session::new(&c).sign_in("ops-asha", PASSWORD), 303, "the account is back");
    assert_eq!(
        get_with_token(&c, &fresh, "/api/v1/schools/74-0600/utilization").0,
        401,
        "its old token is not"
    );

    // --- Signing out ends the session on the server. ---
    let mut admin = Session::new(&c);
    assert_eq!(admin.sign_in("admin", PASSWORD), 303);
    let mut elsewhere = Session::new(&c);
    assert_eq!(elsewhere.sign_in("admin", PASSWORD), 303);
    let copied = admin.cookies.clone();
    let (_, page) = admin.get("/");
    let csrf = hidden(&page, "csrf");
    assert_eq!(admin.post("/logout", &[("csrf", &csrf)]).0, 303);
    let mut thief = Session::new(&c);
    thief.cookies = copied;
    let (status, _, location) = thief.get_with_location("/");
    assert!(
        status == 303 && location.starts_with("/login"),
        "the copied cookie is dead: {status} {location}"
    );
    assert_eq!(
        elsewhere.get("/").0,
        200,
        "the same account's other session (signed in the same second) lives on"
    );

    // --- Reading a report writes nothing; the POST does, CSRF-checked, not for auditors. ---
    let statuses = || ch.query_u64(&format!("SELECT count() FROM {db}.compliance_status"));
    let mut admin = Session::new(&c);
    assert_eq!(admin.sign_in("admin", PASSWORD), 303);
    let (status, page) = admin.get("/compliance?scope=region:74&compute=1");
    assert_eq!(status, 200);
    for format in ["csv", "json", "xlsx"] {
        assert_eq!(admin.get(&format!("/api/v1/compliance?scope=region:74&format={format}")).0, 200);
    }
    let asha = c.api_token("ops-asha");
    assert_eq!(
        get_with_token(&c, &asha, "/api/v1/compliance?scope=region:74&format=csv").0,
        403,
        "outside its scope"
    );
    assert_eq!(statuses(), 0, "viewing and exporting change nothing");
    let csrf = hidden(&page, "csrf");
    assert_eq!(admin.post("/compliance/status", &[("csrf", "forged"), ("scope", "region:74")]).0, 403);
    assert_eq!(statuses(), 0);
    let mut auditor = Session::new(&c);
    assert_eq!(auditor.sign_in("auditor-74", PASSWORD), 303);
    let (_, apage) = auditor.get("/compliance?scope=region:74");
    assert!(!apage.contains("update-status"), "no button for auditors");
    let acsrf = hidden(&apage, "csrf");
    assert_eq!(auditor.post("/compliance/status", &[("csrf", &acsrf), ("scope", "region:74")]).0, 403);
    assert_eq!(statuses(), 0);
    assert_eq!(admin.post("/compliance/status", &[("csrf", &csrf), ("scope", "region:74")]).0, 303);
    let schools =
        ch.query(&format!("SELECT DISTINCT school_id FROM {db}.compliance_status ORDER BY school_id"));
    assert_eq!(schools.split_whitespace().collect::<Vec<_>>(), ["74-0500", "74-0600"], "region 74's schools");
}
