//! Draws `docs/scale.svg` from the CSV `scripts/bench-scale` writes.
//!
//! Usage: `cargo run --release -p ttsan-viz --example scale_plot -- SCALE.csv OUT.svg`

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [csv, out] = args.as_slice() else {
        eprintln!("usage: scale_plot SCALE.csv OUT.svg");
        return ExitCode::from(2);
    };
    let result = std::fs::read_to_string(csv)
        .map_err(|e| format!("cannot read {csv}: {e}"))
        .and_then(|text| ttsan_viz::plot::parse_scale_csv(&text).map_err(|e| e.to_string()))
        .and_then(|points| ttsan_viz::plot::scale_svg(&points).map_err(|e| e.to_string()))
        .and_then(|svg| std::fs::write(out, svg).map_err(|e| format!("cannot write {out}: {e}")));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("scale_plot: {e}");
            ExitCode::from(2)
        }
    }
}
