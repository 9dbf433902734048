//! `ttsan report` end to end, the page's escaping of hostile names, and the plots.

mod support;

use base64::Engine as _;
use std::io::Read as _;
use std::path::Path;
use support::ttsan;
use ttsan_sanitizer::{AnalysisOptions, Analyzer};
use ttsan_test_support::synth::{scenario, write_trace, HOSTILE_NAME};
use ttsan_viz::MapData;

fn build(events: &[ttsan_events::Event]) -> (MapData, ttsan_sanitizer::Analysis) {
    let mut map = MapData::new();
    let mut analyzer = Analyzer::new(AnalysisOptions::default());
    for e in events {
        map.feed(e);
        analyzer.feed(e);
    }
    (map, analyzer.finish(None))
}

/// The base64 text of the data element, inflated.
fn embedded_block(html: &str) -> Vec<u8> {
    let marker = "data-encoding=\"gzip+base64\">";
    let start = html.find(marker).expect("data element") + marker.len();
    let end = start + html[start..].find("</script>").expect("data element ends");
    let gz = base64::engine::general_purpose::STANDARD.decode(&html[start..end]).expect("base64");
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut out).expect("gzip");
    out
}

#[test]
fn report_writes_html_png_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("s.ttsan");
    write_trace(std::fs::File::create(&trace).unwrap(), scenario(false)).unwrap();
    let (html, png, svg) = (dir.path().join("m.html"), dir.path().join("p.png"), dir.path().join("p.svg"));
    let out = ttsan()
        .args([
            "report".as_ref(),
            trace.as_os_str(),
            "--html".as_ref(),
            html.as_os_str(),
            "--png".as_ref(),
            png.as_os_str(),
            "--svg".as_ref(),
            svg.as_os_str(),
        ])
        .output()
        .expect("ttsan runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("2 findings"));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    // Self-contained: no external resources of any kind.
    for needle in ["src=\"http", "href=\"http", "<link", "@import", "url(http"] {
        assert!(!page.contains(needle), "page references {needle}");
    }
    let block = embedded_block(&page);
    assert_eq!(&block[..4], b"TTSV");
    assert!(std::fs::metadata(&png).unwrap().len() > 1000);
    assert!(std::fs::read_to_string(&svg).unwrap().starts_with("<svg"));
}

#[test]
fn report_without_outputs_or_trace_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("s.ttsan");
    write_trace(std::fs::File::create(&trace).unwrap(), scenario(false)).unwrap();
    let out = ttsan().args(["report".as_ref(), trace.as_os_str()]).output().expect("ttsan runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--html"));
    let missing = dir.path().join("missing.ttsan");
    let html = dir.path().join("m.html");
    let out = ttsan()
        .args(["report".as_ref(), missing.as_os_str(), "--html".as_ref(), html.as_os_str()])
        .output()
        .expect("ttsan runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(!html.exists());
    let nowhere = dir.path().join("no-such-dir").join("m.html");
    let out = ttsan()
        .args(["report".as_ref(), trace.as_os_str(), "--html".as_ref(), nowhere.as_os_str()])
        .output()
        .expect("ttsan runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("ttsan: cannot write") && stderr.lines().count() == 1, "{stderr}");
}

#[test]
fn hostile_names_never_appear_as_markup() {
    let (map, analysis) = build(&scenario(true));
    let mut page = Vec::new();
    ttsan_viz::write_html(&map, &analysis, &mut page).unwrap();
    let page = String::from_utf8(page).unwrap();
    // The only <script> elements are the page's own three; the command (which holds markup)
    // shows escaped in the title and header, and as \u003c in the plain JSON summary.
    assert_eq!(page.matches("<script").count(), 3, "{}", &page[..2000.min(page.len())]);
    assert!(!page.contains(HOSTILE_NAME));
    assert!(!page.contains("alert(1)</"));
    assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    let start = page.find("id=\"ttsan-summary\">").unwrap();
    let summary = &page[start..start + page[start..].find("</script>").unwrap()];
    assert!(summary.contains("\\u003cscript\\u003ealert(1)\\u003c/script\\u003e"), "{summary}");
    // The names are data inside the compressed block, intact.
    let block = embedded_block(&page);
    let (meta, _) = ttsan_viz::split_data_block(&block).unwrap();
    let strings: Vec<&str> = meta["strings"].as_array().unwrap().iter().filter_map(|s| s.as_str()).collect();
    assert!(strings.contains(&HOSTILE_NAME));
    assert!(strings.iter().any(|s| s.starts_with("</script><img")));
    assert_eq!(meta["findings"][1]["victim_name"], HOSTILE_NAME);
}

fn png_stats(path: &Path) -> (u32, u32, usize, usize) {
    let mut reader = png::Decoder::new(std::fs::File::open(path).unwrap()).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let ch = info.color_type.samples();
    let mut colors = std::collections::HashSet::new();
    let mut non_white = 0;
    for px in buf[..info.buffer_size()].chunks(ch) {
        colors.insert((px[0], px[1], px[2]));
        if px[..3] != [255, 255, 255] {
            non_white += 1;
        }
    }
    (info.width, info.height, colors.len(), non_white)
}

#[test]
fn plots_have_content() {
    let (map, _) = build(&scenario(false));
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("p.png");
    ttsan_viz::write_png(&map, &png).unwrap();
    let (w, h, colors, non_white) = png_stats(&png);
    assert_eq!((w, h), (ttsan_viz::plot::WIDTH, ttsan_viz::plot::HEIGHT));
    // Lines in several colours, a heat map and anti-aliased text: far more than a blank canvas.
    assert!(colors > 20, "{colors} colours");
    assert!(non_white > 20_000, "{non_white} non-white pixels");
    let svg = ttsan_viz::plot::svg_string(&map).unwrap();
    assert!(svg.contains("memory in use per space"));
    assert!(svg.contains("peak L1 per core"));
    let texts: Vec<&str> = svg.lines().map(str::trim).collect();
    assert!(texts.contains(&"dram") && texts.contains(&"l1"), "legend names the spaces");
    assert!(svg.matches("<rect").count() > 50, "one cell per core");
    assert!(svg.contains("<polyline"), "usage lines");
}
