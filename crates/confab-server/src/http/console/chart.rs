//! Charts for the dashboard, laid out here and drawn as SVG by the
//! templates: grouped bars (a group per day or flow, a bar per series) and
//! one bar split into shares (delivery outcomes). No script draws them.

use serde::Serialize;

const WIDTH: i64 = 720;
const HEIGHT: i64 = 220;
/// Room for the axis' numbers on the left and the labels below.
const LEFT: i64 = 48;
const BOTTOM: i64 = 28;
const TOP: i64 = 10;
/// Labels under the bars at most; between them some are left out.
const LABELS: usize = 10;

#[derive(Debug, Serialize)]
pub struct Bars {
    pub width: i64,
    pub height: i64,
    pub bars: Vec<Bar>,
    /// Lines across with their values.
    pub ticks: Vec<Tick>,
    pub labels: Vec<Label>,
    pub legend: Vec<(&'static str, String)>,
    pub empty: bool,
}

#[derive(Debug, Serialize)]
pub struct Bar {
    pub x: i64,
    pub y: i64,
    pub w: i64,
    pub h: i64,
    pub class: &'static str,
    /// What it is, for a tooltip and a screen reader.
    pub title: String,
}

#[derive(Debug, Serialize)]
pub struct Tick {
    pub y: i64,
    pub value: i64,
}

#[derive(Debug, Serialize)]
pub struct Label {
    pub x: i64,
    pub text: String,
}

/// A round step for about four lines across up to `max`.
fn step(max: i64) -> i64 {
    let rough = (max.max(1) as f64 / 4.0).max(1.0);
    let power = 10f64.powf(rough.log10().floor());
    let nice = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .find(|m| m * power >= rough)
        .unwrap_or(10.0);
    (nice * power) as i64
}

/// One group of bars per label, one bar per series (`class`, `name`,
/// a value per label).
pub fn grouped(labels: &[String], series: &[(&'static str, &str, Vec<i64>)]) -> Bars {
    let max = series
        .iter()
        .flat_map(|(_, _, v)| v.iter().copied())
        .max()
        .unwrap_or(0);
    let step = step(max);
    let top = ((max + step - 1) / step).max(1) * step;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let plot_w = WIDTH - LEFT - 8;
    let groups = labels.len().max(1) as i64;
    let group_w = plot_w / groups;
    let bar_w = ((group_w - 2).max(2) / series.len().max(1) as i64).max(1);
    let y_of = |v: i64| TOP + plot_h - v * plot_h / top;
    let mut bars = Vec::new();
    for (g, label) in labels.iter().enumerate() {
        for (s, (class, name, values)) in series.iter().enumerate() {
            let v = values.get(g).copied().unwrap_or(0);
            if v == 0 {
                continue;
            }
            let y = y_of(v);
            bars.push(Bar {
                x: LEFT + g as i64 * group_w + 1 + s as i64 * bar_w,
                y,
                w: bar_w,
                h: TOP + plot_h - y,
                class,
                title: format!("{label}: {v} {name}"),
            });
        }
    }
    let every = labels.len().div_ceil(LABELS).max(1);
    Bars {
        width: WIDTH,
        height: HEIGHT,
        bars,
        ticks: (0..=top / step)
            .map(|i| Tick {
                y: y_of(i * step),
                value: i * step,
            })
            .collect(),
        labels: labels
            .iter()
            .enumerate()
            .filter(|(i, _)| i % every == 0)
            .map(|(i, l)| Label {
                x: LEFT + i as i64 * group_w + group_w / 2,
                text: l.clone(),
            })
            .collect(),
        legend: series
            .iter()
            .map(|(class, name, _)| (*class, name.to_string()))
            .collect(),
        empty: max == 0,
    }
}

#[derive(Debug, Serialize)]
pub struct Share {
    pub x: i64,
    pub w: i64,
    pub class: String,
    pub name: String,
    pub count: i64,
    /// Of the whole, in tenths of a percent shown as `12.5`.
    pub percent: String,
}

/// One bar split into `parts` (`name`, count), in the order given.
pub fn shares(parts: &[(String, i64)]) -> Vec<Share> {
    let total: i64 = parts.iter().map(|(_, n)| n).sum();
    let mut x = 0;
    parts
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(name, n)| {
            let w = n * WIDTH / total.max(1);
            let share = Share {
                x,
                w,
                class: format!("share-{name}"),
                name: name.clone(),
                count: *n,
                percent: format!("{:.1}", *n as f64 * 100.0 / total.max(1) as f64),
            };
            x += w;
            share
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn bars_stand_on_a_round_scale_and_empty_days_draw_nothing() {
        let labels: Vec<String> = (1..=3).map(|d| format!("12-0{d}")).collect();
        let c = super::grouped(
            &labels,
            &[
                ("in", "received", vec![0, 7, 3]),
                ("out", "sent", vec![0, 9, 0]),
            ],
        );
        assert_eq!(c.bars.len(), 3);
        assert_eq!(c.ticks.last().unwrap().value, 10, "9 rounds up to 10");
        let tallest = c.bars.iter().map(|b| b.h).max().unwrap();
        assert_eq!(
            c.bars
                .iter()
                .find(|b| b.title == "12-02: 9 sent")
                .unwrap()
                .h,
            tallest
        );
        assert!(!c.empty);
        assert!(super::grouped(&labels, &[("in", "x", vec![0, 0, 0])]).empty);
        assert_eq!(super::step(1234), 500);
        assert_eq!(super::step(3), 1);
    }

    #[test]
    fn shares_split_the_bar_by_count() {
        let s = super::shares(&[("read".into(), 3), ("failed".into(), 1), ("sent".into(), 0)]);
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].percent.as_str(), s[1].percent.as_str()),
            ("75.0", "25.0")
        );
        assert_eq!(s[1].x, s[0].w);
    }
}
