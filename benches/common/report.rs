//! What a bench leaves behind besides its printout: its results as JSON and
//! a chart as PNG, in `target/bench/` (or `$SPINE_BENCH_OUT`). The README's
//! charts are copies of these from the run its tables come from.

use std::path::PathBuf;
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde_json::Value;

/// Where results go: `$SPINE_BENCH_OUT`, or `target/bench` in the workspace.
pub fn out_dir() -> PathBuf {
    let dir = std::env::var_os("SPINE_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench"));
    std::fs::create_dir_all(&dir).expect("create the bench output directory");
    dir
}

/// Writes `name.json` and says where.
pub fn write_json(name: &str, value: &Value) {
    let path = out_dir().join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(value).expect("json")).expect("write json");
    println!("Results: {}", path.display());
}

/// plotters draws text with ab_glyph from a TrueType font it is handed; this
/// registers the first DejaVu or Liberation sans font found on the machine
/// (Debian: `fonts-dejavu-core`). Without one, charts are left out and the
/// printout says which package to install.
fn font() -> Result<(), String> {
    static FONT: OnceLock<Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let candidates = [
            "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/dejavu/DejaVuSans.ttf",
            "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
            "/usr/share/fonts/TTF/DejaVuSans.ttf",
        ];
        let bytes = candidates
            .iter()
            .find_map(|p| std::fs::read(p).ok())
            .ok_or_else(|| {
                format!(
                    "no TrueType font found (looked in {}): install `fonts-dejavu-core` for charts",
                    candidates.join(", ")
                )
            })?;
        // plotters keeps registered fonts for the life of the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| "the font file is not a TrueType font".to_owned())
    })
    .clone()
}

fn saved(name: &str, drawn: Result<(), Box<dyn std::error::Error>>) {
    let path = out_dir().join(format!("{name}.png"));
    match drawn {
        Ok(()) => println!("Chart: {}", path.display()),
        Err(e) => println!("Chart {} not drawn: {e}", path.display()),
    }
}

/// One bar of a throughput chart: the median, and the range as a whisker.
pub struct Bar {
    pub side: String,
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

/// `name.png`: one bar per side (median msgs/s, range as a whisker), and a
/// red line at `bound` if there is one.
pub fn throughput_chart(name: &str, title: &str, bars: &[Bar], bound: Option<(&str, f64)>) {
    let path = out_dir().join(format!("{name}.png"));
    let drawn = (|| -> Result<(), Box<dyn std::error::Error>> {
        font()?;
        let top = bars
            .iter()
            .map(|b| b.max)
            .chain(bound.map(|(_, v)| v))
            .fold(1.0, f64::max)
            * 1.15;
        let root =
            BitMapBackend::new(&path, (200 + 140 * bars.len() as u32, 480)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(90)
            .build_cartesian_2d(
                // A segmented range holds both ends: one segment per bar.
                (0..bars.len().saturating_sub(1)).into_segmented(),
                0f64..top,
            )?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .light_line_style(WHITE)
            .y_desc("messages per second (median; whisker: range)")
            .y_label_formatter(&|v| thousands(*v))
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) => bars.get(*i).map_or(String::new(), |b| b.side.clone()),
                _ => String::new(),
            })
            .label_style(("sans-serif", 15))
            .draw()?;
        chart.draw_series(
            Histogram::vertical(&chart)
                .margin(28)
                .style(RGBColor(70, 110, 170).filled())
                .data(bars.iter().enumerate().map(|(i, b)| (i, b.median))),
        )?;
        for (i, b) in bars.iter().enumerate() {
            let x = SegmentValue::CenterOf(i);
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(x.clone(), b.min), (x, b.max)],
                BLACK.stroke_width(2),
            )))?;
            chart.draw_series(std::iter::once(Text::new(
                thousands(b.median),
                (SegmentValue::CenterOf(i), b.max + top * 0.01),
                ("sans-serif", 14)
                    .into_font()
                    .color(&BLACK)
                    .pos(Pos::new(HPos::Center, VPos::Bottom)),
            )))?;
        }
        if let Some((label, v)) = bound {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(SegmentValue::Exact(0), v), (SegmentValue::Last, v)],
                RED.mix(0.7).stroke_width(2),
            )))?;
            chart.draw_series(std::iter::once(Text::new(
                format!("{label} {}", thousands(v)),
                (SegmentValue::Exact(0), v + top * 0.02),
                ("sans-serif", 14).into_font().color(&RED),
            )))?;
        }
        root.present()?;
        Ok(())
    })();
    saved(name, drawn);
}

/// A latency distribution: latency (ms) at each point of [`NINES`].
pub struct Curve {
    pub side: String,
    pub millis: Vec<f64>,
}

/// The percentiles a latency curve is sampled at, as "nines":
/// `q = 1 - 10^-x` for x = 0, 0.1, …, 4 (p0 … p99.99).
pub fn nines() -> Vec<f64> {
    (0..=40).map(|k| k as f64 / 10.0).collect()
}

/// The quantile at `x` nines.
pub fn quantile(x: f64) -> f64 {
    1.0 - 10f64.powf(-x)
}

/// `name.png`: latency by percentile, one line per side, on a log scale.
pub fn latency_chart(name: &str, title: &str, curves: &[Curve]) {
    let path = out_dir().join(format!("{name}.png"));
    let drawn = (|| -> Result<(), Box<dyn std::error::Error>> {
        font()?;
        let all = curves.iter().flat_map(|c| c.millis.iter().copied());
        let (lo, hi) = all.fold((f64::MAX, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let root = BitMapBackend::new(&path, (800, 480)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..4f64, ((lo * 0.8).max(0.01)..hi * 1.25).log_scale())?;
        chart
            .configure_mesh()
            .x_labels(5)
            .x_label_formatter(&|x| match x.round() as i64 {
                0 => "p0".into(),
                1 => "p90".into(),
                2 => "p99".into(),
                3 => "p99.9".into(),
                _ => "p99.99".into(),
            })
            .y_desc("produce → handler start, ms")
            .light_line_style(WHITE)
            .y_label_formatter(&|v| format!("{v}"))
            .label_style(("sans-serif", 15))
            .draw()?;
        let colours = [
            RGBColor(200, 80, 60),
            RGBColor(70, 110, 170),
            RGBColor(90, 160, 90),
        ];
        for (c, colour) in curves.iter().zip(colours.iter().cycle()) {
            let colour = *colour;
            chart
                .draw_series(LineSeries::new(
                    nines().into_iter().zip(c.millis.iter().copied()),
                    colour.stroke_width(2),
                ))?
                .label(c.side.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .label_font(("sans-serif", 15))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    })();
    saved(name, drawn);
}

/// 16038 → "16,038".
pub fn thousands(v: f64) -> String {
    let s = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 {
        format!("-{out}")
    } else {
        out
    }
}
