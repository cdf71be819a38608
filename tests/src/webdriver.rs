//! A headless Debian Chromium driven over WebDriver (W3C) by its own `chromedriver`: just the
//! commands the browser tests use — open a page, find, click, type, read text, screenshot, and
//! downloads into a directory of the test's.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::util::{free_tcp_port, wait_for};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A browser session; quits and stops chromedriver when dropped.
pub struct Browser {
    driver: Child,
    base: String,
    agent: ureq::Agent,
    /// Where downloads land.
    pub downloads: PathBuf,
    shots: PathBuf,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium; downloads go to `downloads`, screenshots to
    /// `shots`.
    pub fn start(downloads: &Path, shots: &Path) -> Self {
        std::fs::create_dir_all(downloads).unwrap();
        std::fs::create_dir_all(shots).unwrap();
        let port = free_tcp_port();
        let log = std::fs::File::create(shots.join("chromedriver.log")).unwrap();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("chromedriver (Debian package chromium-driver; scripts/install-deps.sh installs it)");
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .new_agent();
        let base = format!("http://127.0.0.1:{port}");
        wait_for(Duration::from_secs(30), "chromedriver", || {
            agent.get(&format!("{base}/status")).call().ok().filter(|r| r.status() == 200).map(|_| ())
        });
        let mut b = Self { driver, base, agent, downloads: downloads.to_owned(), shots: shots.to_owned() };
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                         "--window-size=1366,900", "--lang=ru-RU", "--no-first-run", "--disable-extensions"],
                "prefs": {"download.default_directory": downloads.display().to_string(),
                          "download.prompt_for_download": false}
            }
        }}});
        let v = b.call("POST", "/session", Some(caps));
        let id = v["sessionId"].as_str().unwrap_or_else(|| panic!("no session: {v}")).to_owned();
        b.base = format!("{}/session/{id}", b.base);
        // Headless Chromium downloads only where told to.
        b.call(
            "POST",
            "/chromium/send_command",
            Some(json!({"cmd": "Page.setDownloadBehavior",
                        "params": {"behavior": "allow", "downloadPath": downloads.display().to_string()}})),
        );
        b
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let resp = match (method, body) {
            ("POST", Some(b)) => self.agent.post(&url).send_json(b),
            ("POST", None) => self.agent.post(&url).send_json(json!({})),
            ("DELETE", _) => self.agent.delete(&url).call(),
            _ => self.agent.get(&url).call(),
        };
        let mut resp = resp.unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let status = resp.status().as_u16();
        let v: Value = resp.body_mut().read_json().unwrap_or(Value::Null);
        assert!(status < 400, "WebDriver {method} {path}: {status} {v}");
        v["value"].clone()
    }

    /// Opens a URL and waits for the page to load.
    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url})));
    }

    /// The current URL.
    pub fn url(&self) -> String {
        self.call("GET", "/url", None).as_str().unwrap_or_default().to_owned()
    }

    /// The page's text.
    pub fn body_text(&self) -> String {
        self.text(&self.find("body"))
    }

    fn try_find(&self, css: &str) -> Option<String> {
        let url = format!("{}/element", self.base);
        let mut resp =
            self.agent.post(&url).send_json(json!({"using": "css selector", "value": css})).ok()?;
        if resp.status() != 200 {
            return None;
        }
        let v: Value = resp.body_mut().read_json().ok()?;
        v["value"][ELEMENT].as_str().map(str::to_owned)
    }

    /// The first element matching a CSS selector (waits up to 10 s for it).
    pub fn find(&self, css: &str) -> String {
        wait_for(Duration::from_secs(10), &format!("element {css}"), || self.try_find(css))
    }

    /// Whether an element matching `css` is on the page now.
    pub fn has(&self, css: &str) -> bool {
        self.try_find(css).is_some()
    }

    /// Clicks an element.
    pub fn click(&self, el: &str) {
        self.call("POST", &format!("/element/{el}/click"), None);
    }

    /// Clicks the link whose text is `text`.
    pub fn click_link(&self, text: &str) {
        let el = wait_for(Duration::from_secs(10), &format!("link {text:?}"), || {
            let url = format!("{}/element", self.base);
            let mut resp =
                self.agent.post(&url).send_json(json!({"using": "link text", "value": text})).ok()?;
            let v: Value = resp.body_mut().read_json().ok()?;
            v["value"][ELEMENT].as_str().map(str::to_owned)
        });
        self.click(&el);
    }

    /// Types into an element.
    pub fn type_into(&self, el: &str, text: &str) {
        self.call("POST", &format!("/element/{el}/clear"), None);
        self.call("POST", &format!("/element/{el}/value"), Some(json!({"text": text})));
    }

    /// An element's visible text.
    pub fn text(&self, el: &str) -> String {
        self.call("GET", &format!("/element/{el}/text"), None).as_str().unwrap_or_default().to_owned()
    }

    /// Saves a screenshot as `NAME.png` in the screenshot directory.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let b64 = self.call("GET", "/screenshot", None);
        let png = decode_base64(b64.as_str().unwrap_or_default());
        assert!(png.starts_with(b"\x89PNG"), "screenshot is not a PNG");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.agent.delete(&self.base).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64 (screenshots).
fn decode_base64(s: &str) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes().filter_map(val) {
        acc = (acc << 6) | c;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).unwrap());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_decodes() {
        assert_eq!(super::decode_base64("UGFydGE="), b"Parta");
        assert_eq!(super::decode_base64("iVBORw=="), b"\x89PNG");
    }
}
