//! Driving headless Chromium from tests: find it, load a page, read the DOM or a screenshot.
//!
//! The page under test runs its own self-test (`?selftest=1`) and writes a JSON verdict into
//! `<pre id="selftest">`; `--dump-dom` hands the DOM back once the page is idle, so no DevTools
//! connection is needed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one Chromium run may take before it is killed.
const RUN_LIMIT: Duration = Duration::from_secs(240);

/// The Chromium binary, or `None` after saying the test is skipped.
///
/// With `CI=true` a missing Chromium fails the test instead: CI must install it.
pub fn require() -> Option<PathBuf> {
    let found = ["chromium", "chromium-browser", "google-chrome"].iter().find_map(|name| which(name));
    if found.is_none() {
        crate::support::skip("the browser test", "chromium is not installed (apt-get install -y chromium)");
    }
    found
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
}

/// Chromium with the flags every run uses and a fresh profile.
pub fn command(chromium: &Path, profile: &Path) -> Command {
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--window-size=1400,900",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .stdin(Stdio::null());
    cmd
}

/// Runs `cmd` to completion, killing it past [`RUN_LIMIT`]; returns its stdout.
fn run(mut cmd: Command) -> String {
    let out = tempfile::NamedTempFile::new().expect("temp file");
    let err = tempfile::NamedTempFile::new().expect("temp file");
    cmd.stdout(out.reopen().expect("reopen")).stderr(err.reopen().expect("reopen"));
    let mut child = cmd.spawn().expect("chromium starts");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if start.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::read_to_string(out.path()).unwrap_or_default()
}

/// The page's DOM after it settled (`budget_ms` of virtual time for its scripts).
pub fn dump_dom(chromium: &Path, url: &str, budget_ms: u64) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let mut cmd = command(chromium, profile.path());
    cmd.arg(format!("--virtual-time-budget={budget_ms}")).arg("--dump-dom").arg(url);
    run(cmd)
}

/// The text of the element `<pre id="ID" ...>` in a dumped DOM, entities decoded.
pub fn pre_text(dom: &str, id: &str) -> Option<String> {
    let open = format!("<pre id=\"{id}\"");
    let start = dom.find(&open)?;
    let body = start + dom[start..].find('>')? + 1;
    let end = body + dom[body..].find("</pre>")?;
    Some(
        dom[body..end]
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&nbsp;", "\u{a0}")
            .replace("&amp;", "&"),
    )
}

/// A `file://` URL for a local path.
pub fn file_url(path: &Path, query: &str) -> String {
    format!("file://{}{}", path.display(), query)
}

/// Pixels in the rectangle `(x0, y0)..(x1, y1)` of an RGB(A) PNG whose colour is saturated
/// (roles and findings are; the map background, text and panels are greys).
pub fn saturated_pixels(png_path: &Path, (x0, y0): (u32, u32), (x1, y1): (u32, u32)) -> (u64, u32, u32) {
    let decoder = png::Decoder::new(std::fs::File::open(png_path).expect("screenshot exists"));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).expect("a frame");
    let channels = info.color_type.samples();
    let mut count = 0;
    for y in y0..y1.min(info.height) {
        for x in x0..x1.min(info.width) {
            let i = (y as usize * info.width as usize + x as usize) * channels;
            let (r, g, b) = (buf[i], buf[i + 1], buf[i + 2]);
            if r.max(g).max(b) - r.min(g).min(b) > 40 {
                count += 1;
            }
        }
    }
    (count, info.width, info.height)
}
