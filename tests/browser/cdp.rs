//! A minimal DevTools-protocol client over 127.0.0.1, for what `--dump-dom` cannot do: measure
//! real time. With `--virtual-time-budget` the page's clock is virtual (it stands still while
//! script runs), so time-to-first-render must be read from a page that runs in real time.

use super::chromium;
use base64::Engine as _;
use serde_json::{json, Value};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use tungstenite::{stream::MaybeTlsStream, Message, WebSocket};

/// A headless Chromium with one page, driven over the DevTools protocol.
pub struct Browser {
    child: Child,
    ws: WebSocket<MaybeTlsStream<TcpStream>>,
    session: String,
    next_id: u64,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium and opens a 1400x900 page.
    pub fn launch(binary: &Path) -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let mut cmd = chromium::command(binary, profile.path());
        cmd.arg("--remote-debugging-address=127.0.0.1")
            .arg("--remote-debugging-port=0")
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().expect("chromium starts");
        let port_file = profile.path().join("DevToolsActivePort");
        let start = Instant::now();
        let text = loop {
            match std::fs::read_to_string(&port_file) {
                Ok(t) if t.lines().count() >= 2 => break t,
                _ if start.elapsed() > Duration::from_secs(60) => {
                    let _ = child.kill();
                    panic!("chromium did not open its DevTools port");
                }
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        };
        let mut lines = text.lines();
        let port = lines.next().unwrap_or_default().trim().to_string();
        let path = lines.next().unwrap_or_default().trim().to_string();
        let (ws, _) = tungstenite::connect(format!("ws://127.0.0.1:{port}{path}")).expect("DevTools connection");
        let mut browser = Browser { child, ws, session: String::new(), next_id: 0, _profile: profile };
        let target = browser.call(None, "Target.createTarget", json!({"url": "about:blank"}));
        let target_id = target["targetId"].as_str().expect("target id").to_string();
        let attached = browser.call(None, "Target.attachToTarget", json!({"targetId": target_id, "flatten": true}));
        browser.session = attached["sessionId"].as_str().expect("session id").to_string();
        let session = Some(browser.session.clone());
        browser.call(
            session.as_deref(),
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1400, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
        );
        browser.call(session.as_deref(), "Page.enable", json!({}));
        browser
    }

    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        self.ws.send(Message::text(msg.to_string())).expect("send");
        loop {
            let reply = self.ws.read().expect("DevTools reply");
            let Message::Text(text) = reply else { continue };
            let v: Value = serde_json::from_str(text.as_str()).expect("DevTools JSON");
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Loads `url` in the page.
    pub fn navigate(&mut self, url: &str) {
        let s = self.session.clone();
        self.call(Some(&s), "Page.navigate", json!({"url": url}));
    }

    /// Evaluates `expr` in the page and returns its value.
    pub fn eval(&mut self, expr: &str) -> Value {
        let s = self.session.clone();
        let r = self.call(Some(&s), "Runtime.evaluate", json!({"expression": expr, "returnByValue": true}));
        r["result"]["value"].clone()
    }

    /// Waits until the text of element `id` is non-empty, and returns it.
    pub fn wait_text(&mut self, id: &str, limit: Duration) -> String {
        let start = Instant::now();
        let expr = format!("(document.getElementById('{id}') || {{}}).textContent || ''");
        loop {
            if let Some(t) = self.eval(&expr).as_str().filter(|t| !t.is_empty()) {
                return t.to_string();
            }
            assert!(start.elapsed() < limit, "no #{id} text after {limit:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A PNG screenshot of the page.
    pub fn screenshot(&mut self, out: &Path) {
        let s = self.session.clone();
        let r = self.call(Some(&s), "Page.captureScreenshot", json!({"format": "png"}));
        let data =
            base64::engine::general_purpose::STANDARD.decode(r["data"].as_str().unwrap_or_default()).expect("base64");
        std::fs::write(out, data).expect("screenshot written");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.ws.send(Message::text(json!({"id": 0, "method": "Browser.close"}).to_string()));
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
