//! A browser-like HTTP session with the collector's web UI (cookies kept by hand, no
//! redirects followed), for the UI's access tests.

use std::time::Duration;

use crate::procs::Collector;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .new_agent()
}

/// A browser-like HTTP session: cookies kept by hand.
pub struct Session<'a> {
    c: &'a Collector,
    http: ureq::Agent,
    /// Cookies held, name and value.
    pub cookies: Vec<(String, String)>,
    /// Headers sent with every request (a proxy's `X-Forwarded-For`).
    pub headers: Vec<(String, String)>,
}

impl<'a> Session<'a> {
    /// A session without cookies.
    pub fn new(c: &'a Collector) -> Self {
        Self { c, http: agent(), cookies: Vec::new(), headers: Vec::new() }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn keep(&mut self, resp: &ureq::http::Response<ureq::Body>) {
        for v in resp.headers().get_all("set-cookie") {
            let pair = v.to_str().unwrap().split(';').next().unwrap();
            let (k, val) = pair.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != k);
            if !val.is_empty() {
                self.cookies.push((k.to_owned(), val.to_owned()));
            }
        }
    }

    /// GET: status and body.
    pub fn get(&mut self, path: &str) -> (u16, String) {
        let (status, body, _) = self.get_with_location(path);
        (status, body)
    }

    /// GET: status, body and the `Location` header.
    pub fn get_with_location(&mut self, path: &str) -> (u16, String, String) {
        let mut req = self.http.get(&self.c.url(path)).header("Cookie", &self.cookie_header());
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let mut resp = req.call().unwrap();
        self.keep(&resp);
        let location = resp
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .unwrap_or_default();
        (
            resp.status().as_u16(),
            String::from_utf8_lossy(&resp.body_mut().read_to_vec().unwrap()).into_owned(),
            location,
        )
    }

    /// POST of a form: status and body.
    pub fn post(&mut self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let mut req = self.http.post(&self.c.url(path)).header("Cookie", &self.cookie_header());
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let mut resp = req.send_form(form.iter().copied()).unwrap();
        self.keep(&resp);
        (resp.status().as_u16(), resp.body_mut().read_to_string().unwrap())
    }

    /// A session arriving through a proxy that says the browser is at `addr`.
    pub fn from_address(c: &'a Collector, addr: &str) -> Self {
        let mut s = Self::new(c);
        s.headers.push(("X-Forwarded-For".to_owned(), addr.to_owned()));
        s
    }

    /// Signs in; the status of the POST.
    pub fn sign_in(&mut self, login: &str, password: &str) -> u16 {
        let (_, form) = self.get("/login");
        let csrf = hidden(&form, "csrf");
        self.post("/login", &[("login", login), ("password", password), ("csrf", &csrf), ("next", "/")]).0
    }
}

/// The value of a hidden input in a page.
pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}" value=""#);
    let start = html.find(&marker).unwrap_or_else(|| panic!("no {name} in {html}")) + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// The text of the `<textarea name="NAME">` in a page, HTML entities decoded.
pub fn textarea(html: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}""#);
    let at = html.find(&marker).unwrap_or_else(|| panic!("no {name} in {html}"));
    let start = at + html[at..].find('>').unwrap() + 1;
    let end = start + html[start..].find("</textarea>").unwrap();
    html[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}
