//! Results of a benchmark run and their presentation: a plain-text table for the terminal and
//! Markdown for `docs/benchmarks.md`.
//!
//! The machine is noisy (±30 % between runs), so the figure to trust is the *ratio* between a
//! Plasma Stream system and a peer measured in the same run: every scenario prints the median of
//! its runs with the min–max spread, and a ratio matrix (ours ÷ peer, on median throughput).

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One timed transfer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sample {
    /// Payload bytes that arrived complete (data of whole objects).
    pub bytes: u64,
    /// Objects that arrived complete.
    pub objects: u64,
    /// Wall time of the transfer, seconds.
    pub secs: f64,
    /// Seconds until half of the objects were complete, when measured.
    pub half_secs: Option<f64>,
    /// Peak `RssAnon` in bytes, by process role (e.g. "src", "dst").
    pub peaks: BTreeMap<String, u64>,
    /// CPU seconds (user + system) each process spent in the timed section, by role.
    pub cpu: BTreeMap<String, f64>,
    /// Something a reader must know about this sample (e.g. cut off at a deadline).
    pub note: Option<String>,
}

impl Sample {
    /// Throughput in GB/s (10^9 bytes per second); 0 for an empty or instantaneous sample.
    pub fn gbytes_per_sec(&self) -> f64 {
        if self.secs > 0.0 {
            self.bytes as f64 / self.secs / 1e9
        } else {
            0.0
        }
    }

    pub fn objects_per_sec(&self) -> f64 {
        if self.secs > 0.0 {
            self.objects as f64 / self.secs
        } else {
            0.0
        }
    }

    /// CPU seconds per GB (10^9 bytes) of payload moved, by role; empty when nothing moved.
    pub fn cpu_per_gb(&self) -> BTreeMap<String, f64> {
        if self.bytes == 0 {
            return BTreeMap::new();
        }
        let gb = self.bytes as f64 / 1e9;
        self.cpu.iter().map(|(k, v)| (k.clone(), v / gb)).collect()
    }
}

/// Whether a row is a Plasma Stream system or a peer it is compared against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Ours,
    Peer,
}

/// One system in one scenario: its samples and the errors of the runs that failed.
#[derive(Clone, Debug)]
pub struct Row {
    pub system: String,
    pub side: Side,
    pub samples: Vec<Sample>,
    pub errors: Vec<String>,
}

impl Row {
    pub fn new(system: impl Into<String>, side: Side) -> Self {
        Self {
            system: system.into(),
            side,
            samples: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// Median throughput over the samples (GB/s), `None` without samples.
    pub fn median_gbps(&self) -> Option<f64> {
        median(self.samples.iter().map(Sample::gbytes_per_sec).collect())
    }

    pub fn median_objects_per_sec(&self) -> Option<f64> {
        median(self.samples.iter().map(Sample::objects_per_sec).collect())
    }

    pub fn median_half_secs(&self) -> Option<f64> {
        median(self.samples.iter().filter_map(|s| s.half_secs).collect())
    }

    /// The highest peak of each role over all samples.
    pub fn peaks(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for s in &self.samples {
            for (k, v) in &s.peaks {
                let e = out.entry(k.clone()).or_insert(0);
                *e = (*e).max(*v);
            }
        }
        out
    }

    /// The median over the samples of each role's CPU seconds per GB.
    pub fn median_cpu_per_gb(&self) -> BTreeMap<String, f64> {
        let mut by_role: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for s in &self.samples {
            for (k, v) in s.cpu_per_gb() {
                by_role.entry(k).or_default().push(v);
            }
        }
        by_role
            .into_iter()
            .filter_map(|(k, v)| median(v).map(|m| (k, m)))
            .collect()
    }

    fn spread(&self) -> Option<(f64, f64)> {
        let v: Vec<f64> = self.samples.iter().map(Sample::gbytes_per_sec).collect();
        let min = v.iter().copied().reduce(f64::min)?;
        let max = v.iter().copied().reduce(f64::max)?;
        Some((min, max))
    }

    fn notes(&self) -> Vec<String> {
        let mut notes: Vec<String> = self.samples.iter().filter_map(|s| s.note.clone()).collect();
        notes.extend(self.errors.iter().map(|e| format!("FAILED: {e}")));
        notes.dedup();
        notes
    }
}

/// One scenario's results.
#[derive(Clone, Debug)]
pub struct ScenarioResult {
    /// Short id such as `S1-loopback`.
    pub id: String,
    /// What moved, e.g. "1 object of 1 GiB, loopback".
    pub title: String,
    pub rows: Vec<Row>,
}

/// The median of the values (mean of the middle two for an even count); `None` when empty.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    Some(if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    })
}

/// `ours ÷ peer`, `None` when either is missing or the peer moved nothing.
pub fn ratio(ours: Option<f64>, peer: Option<f64>) -> Option<f64> {
    match (ours, peer) {
        (Some(o), Some(p)) if p > 0.0 => Some(o / p),
        _ => None,
    }
}

/// Bytes as MiB with one decimal, e.g. `12.5 MiB`.
pub fn fmt_mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// A throughput with a precision that suits its size: `1.23`, `0.045`, `0.0012`.
pub fn fmt_rate(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.2}")
    } else if v >= 0.01 {
        format!("{v:.3}")
    } else {
        format!("{v:.4}")
    }
}

/// A count per second without false precision: `65536`, `1234`, `12.3`.
pub fn fmt_count(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

pub fn fmt_ratio(r: Option<f64>) -> String {
    match r {
        Some(r) if r >= 10.0 => format!("{r:.0}×"),
        Some(r) => format!("{r:.2}×"),
        None => "–".into(),
    }
}

/// CPU seconds per GB with two significant digits or so: `0.42`, `1.3`, `12`.
pub fn fmt_cpu(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

const COLUMNS: usize = 9;

const HEADERS: [&str; COLUMNS] = [
    "system",
    "GB/s (median)",
    "min–max GB/s",
    "Gbit/s",
    "objects/s",
    "half done (s)",
    "CPU s/GB",
    "peak RssAnon",
    "runs",
];

/// Columns of text, left-aligned in the terminal table (the others are numbers).
const TEXT_COLUMNS: [usize; 3] = [0, 6, 7];

fn row_cells(row: &Row) -> [String; COLUMNS] {
    let dash = || "–".to_string();
    let gbps = row.median_gbps();
    let peaks = row.peaks();
    let peak_text = if peaks.is_empty() {
        dash()
    } else {
        peaks
            .iter()
            .map(|(k, v)| format!("{k} {}", fmt_mib(*v)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let cpu = row.median_cpu_per_gb();
    let cpu_text = if cpu.is_empty() {
        dash()
    } else {
        cpu.iter()
            .map(|(k, v)| format!("{k} {}", fmt_cpu(*v)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    [
        row.system.clone(),
        gbps.map(fmt_rate).unwrap_or_else(dash),
        row.spread()
            .map(|(a, b)| format!("{}–{}", fmt_rate(a), fmt_rate(b)))
            .unwrap_or_else(dash),
        gbps.map(|g| fmt_rate(g * 8.0)).unwrap_or_else(dash),
        row.median_objects_per_sec()
            .map(fmt_count)
            .unwrap_or_else(dash),
        row.median_half_secs()
            .map(|h| format!("{h:.2}"))
            .unwrap_or_else(dash),
        cpu_text,
        peak_text,
        format!(
            "{}{}",
            row.samples.len(),
            if row.errors.is_empty() {
                String::new()
            } else {
                format!(" (+{} failed)", row.errors.len())
            }
        ),
    ]
}

/// One line of a ratio matrix: a system of ours, and `(peer, ours ÷ peer)` per peer.
pub type RatioLine = (String, Vec<(String, Option<f64>)>);

/// The ratio matrix of a scenario: one line per system of ours, one column per peer.
/// Empty when the scenario has no peers or no system of ours.
pub fn ratio_matrix(result: &ScenarioResult) -> Vec<RatioLine> {
    let peers: Vec<&Row> = result
        .rows
        .iter()
        .filter(|r| r.side == Side::Peer)
        .collect();
    let ours: Vec<&Row> = result
        .rows
        .iter()
        .filter(|r| r.side == Side::Ours)
        .collect();
    if peers.is_empty() {
        return Vec::new();
    }
    ours.iter()
        .map(|o| {
            let cols = peers
                .iter()
                .map(|p| (p.system.clone(), ratio(o.median_gbps(), p.median_gbps())))
                .collect();
            (o.system.clone(), cols)
        })
        .collect()
}

/// A fixed-width text table of one scenario, ratio matrix and notes, for the terminal.
pub fn render_text(result: &ScenarioResult) -> String {
    let mut rows: Vec<[String; COLUMNS]> = vec![HEADERS.map(String::from)];
    rows.extend(result.rows.iter().map(row_cells));
    let widths: Vec<usize> = (0..COLUMNS)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = format!("\n== {}: {}\n", result.id, result.title);
    for (i, r) in rows.iter().enumerate() {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, w))| {
                let pad = w - cell.chars().count();
                if TEXT_COLUMNS.contains(&c) {
                    format!("{cell}{}", " ".repeat(pad))
                } else {
                    format!("{}{cell}", " ".repeat(pad))
                }
            })
            .collect();
        let _ = writeln!(out, "  {}", cells.join("  ").trim_end());
        if i == 0 {
            let total: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
            let _ = writeln!(out, "  {}", "-".repeat(total));
        }
    }
    for (ours, cols) in ratio_matrix(result) {
        let text: Vec<String> = cols
            .iter()
            .map(|(p, r)| format!("{} vs {p}", fmt_ratio(*r)))
            .collect();
        let _ = writeln!(out, "  ratio {ours}: {}", text.join(", "));
    }
    for row in &result.rows {
        for n in row.notes() {
            let _ = writeln!(out, "  note {}: {n}", row.system);
        }
    }
    out
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}

/// One scenario as Markdown: a results table, a ratio table and notes.
pub fn render_markdown(result: &ScenarioResult) -> String {
    let mut out = format!("#### {}: {}\n\n", result.id, md_escape(&result.title));
    let _ = writeln!(out, "| {} |", HEADERS.join(" | "));
    let _ = writeln!(
        out,
        "|---|{}",
        HEADERS[1..].iter().map(|_| "---:|").collect::<String>()
    );
    for row in &result.rows {
        let cells = row_cells(row).map(|c| md_escape(&c));
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    let matrix = ratio_matrix(result);
    if let Some((_, first)) = matrix.first() {
        let _ = writeln!(out);
        let peer_names: Vec<String> = first.iter().map(|(p, _)| md_escape(p)).collect();
        let _ = writeln!(out, "| ours ÷ peer | {} |", peer_names.join(" | "));
        let _ = writeln!(
            out,
            "|---|{}",
            peer_names.iter().map(|_| "---:|").collect::<String>()
        );
        for (ours, cols) in &matrix {
            let cells: Vec<String> = cols.iter().map(|(_, r)| fmt_ratio(*r)).collect();
            let _ = writeln!(out, "| {} | {} |", md_escape(ours), cells.join(" | "));
        }
    }
    let notes: Vec<String> = result
        .rows
        .iter()
        .flat_map(|r| {
            r.notes()
                .into_iter()
                .map(move |n| format!("- {}: {}", md_escape(&r.system), md_escape(&n)))
        })
        .collect();
    if !notes.is_empty() {
        let _ = writeln!(out);
        for n in notes {
            let _ = writeln!(out, "{n}");
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(bytes: u64, secs: f64) -> Sample {
        Sample {
            bytes,
            objects: 64,
            secs,
            ..Default::default()
        }
    }

    fn scenario() -> ScenarioResult {
        let mut quic = Row::new("QUIC", Side::Ours);
        quic.samples = vec![sample(2_000_000_000, 2.0), sample(2_000_000_000, 1.0)];
        quic.samples[0].peaks.insert("dst".into(), 10 << 20);
        quic.samples[1].peaks.insert("dst".into(), 12 << 20);
        quic.samples[1].half_secs = Some(0.5);
        // 2 GB each: 0.8 and 1.2 s of the destination's CPU = 0.4 and 0.6 s/GB, median 0.5.
        quic.samples[0].cpu.insert("dst".into(), 0.8);
        quic.samples[1].cpu.insert("dst".into(), 1.2);
        quic.samples[1].cpu.insert("src".into(), 0.2);
        let mut tcp = Row::new("TCP copy", Side::Peer);
        tcp.samples = vec![sample(1_000_000_000, 1.0)];
        let mut broken = Row::new("Flight|TLS", Side::Peer);
        broken.errors.push("exit status 1".into());
        ScenarioResult {
            id: "S2".into(),
            title: "64 × 16 MiB".into(),
            rows: vec![quic, tcp, broken],
        }
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn throughput_and_rates() {
        let s = sample(3_000_000_000, 2.0);
        assert_eq!(s.gbytes_per_sec(), 1.5);
        assert_eq!(s.objects_per_sec(), 32.0);
        assert_eq!(sample(5, 0.0).gbytes_per_sec(), 0.0);
    }

    #[test]
    fn ratio_needs_both_sides() {
        assert_eq!(ratio(Some(3.0), Some(2.0)), Some(1.5));
        assert_eq!(ratio(None, Some(2.0)), None);
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
        assert_eq!(fmt_ratio(Some(1.5)), "1.50×");
        assert_eq!(fmt_ratio(Some(123.4)), "123×");
        assert_eq!(fmt_ratio(None), "–");
    }

    #[test]
    fn number_formatting() {
        assert_eq!(fmt_rate(1.234), "1.23");
        assert_eq!(fmt_rate(0.0456), "0.046");
        assert_eq!(fmt_rate(0.00123), "0.0012");
        assert_eq!(fmt_count(65536.4), "65536");
        assert_eq!(fmt_count(12.34), "12.3");
        assert_eq!(fmt_mib(3 << 19), "1.5 MiB");
    }

    #[test]
    fn row_statistics() {
        let s = scenario();
        let quic = &s.rows[0];
        assert_eq!(quic.median_gbps(), Some(1.5));
        assert_eq!(quic.median_half_secs(), Some(0.5));
        assert_eq!(quic.peaks()["dst"], 12 << 20);
        assert_eq!(s.rows[2].median_gbps(), None);
        let cpu = quic.median_cpu_per_gb();
        assert!((cpu["dst"] - 0.5).abs() < 1e-9, "{cpu:?}");
        assert!((cpu["src"] - 0.1).abs() < 1e-9, "{cpu:?}");
        assert!(s.rows[1].median_cpu_per_gb().is_empty());
        assert!(sample(0, 1.0).cpu_per_gb().is_empty());
        assert_eq!(fmt_cpu(0.456), "0.46");
        assert_eq!(fmt_cpu(3.21), "3.2");
        assert_eq!(fmt_cpu(12.6), "13");
    }

    #[test]
    fn ratio_matrix_compares_ours_with_each_peer() {
        let m = ratio_matrix(&scenario());
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].0, "QUIC");
        assert_eq!(m[0].1[0], ("TCP copy".to_string(), Some(1.5)));
        assert_eq!(m[0].1[1], ("Flight|TLS".to_string(), None));
    }

    #[test]
    fn text_table_has_every_row_and_the_ratio() {
        let t = render_text(&scenario());
        assert!(t.contains("== S2: 64 × 16 MiB"));
        assert!(t.contains("QUIC"));
        assert!(t.contains("12.0"), "{t}"); // Gbit/s of 1.5 GB/s
        assert!(t.contains("1.50× vs TCP copy"), "{t}");
        assert!(t.contains("dst 0.50, src 0.10"), "{t}");
        assert!(t.contains("FAILED: exit status 1"), "{t}");
        // Every data line is as wide as the header's rule (aligned columns).
        let lines: Vec<&str> = t.lines().filter(|l| l.starts_with("  ")).collect();
        assert!(lines[1].trim().chars().all(|c| c == '-'));
    }

    #[test]
    fn markdown_tables_are_well_formed() {
        let md = render_markdown(&scenario());
        let table: Vec<&str> = md.lines().filter(|l| l.starts_with('|')).collect();
        // results header + rule + 3 rows, ratio header + rule + 1 row
        assert_eq!(table.len(), 8, "{md}");
        let cols = |l: &str| l.matches(" | ").count() - l.matches("\\|").count();
        assert_eq!(cols(table[0]), cols(table[2]), "{md}");
        assert!(md.contains("Flight\\|TLS"), "pipes escaped: {md}");
        assert!(md.contains("| QUIC | 1.50× | – |"), "{md}");
        assert!(
            md.contains("| 0.50 | dst 0.50, src 0.10 | dst 12.0 MiB | 2 |"),
            "{md}"
        );
        assert!(md.contains("- Flight\\|TLS: FAILED: exit status 1"), "{md}");
    }
}
