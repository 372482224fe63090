//! A line diff of two texts (a flow's versions as YAML): the longest common
//! subsequence of their lines, then each line as kept, removed or added.

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Same,
    Removed,
    Added,
}

/// Texts longer than this many lines are not compared line by line (the
/// table is lines²); a flow is far shorter.
const MAX_LINES: usize = 4000;

/// `old` to `new`, line by line; `None` when either is too long to compare.
pub fn lines<'a>(old: &'a str, new: &'a str) -> Option<Vec<(Change, &'a str)>> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    if a.len() > MAX_LINES || b.len() > MAX_LINES {
        return None;
    }
    // lcs[i][j]: the longest common run of a[i..] and b[j..].
    let width = b.len() + 1;
    let mut lcs = vec![0u32; (a.len() + 1) * width];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i * width + j] = if a[i] == b[j] {
                lcs[(i + 1) * width + j + 1] + 1
            } else {
                lcs[(i + 1) * width + j].max(lcs[i * width + j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            out.push((Change::Same, a[i]));
            (i, j) = (i + 1, j + 1);
        } else if lcs[(i + 1) * width + j] >= lcs[i * width + j + 1] {
            out.push((Change::Removed, a[i]));
            i += 1;
        } else {
            out.push((Change::Added, b[j]));
            j += 1;
        }
    }
    out.extend(a[i..].iter().map(|l| (Change::Removed, *l)));
    out.extend(b[j..].iter().map(|l| (Change::Added, *l)));
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::Change::{Added, Removed, Same};

    #[test]
    fn changed_lines_are_removed_and_added_and_the_rest_kept() {
        let old = "id: a\ntext: Hello v1\nnext: b\n";
        let new = "id: a\ntext: Hello v2\nnext: b\nsave_as: x\n";
        assert_eq!(
            super::lines(old, new).unwrap(),
            vec![
                (Same, "id: a"),
                (Removed, "text: Hello v1"),
                (Added, "text: Hello v2"),
                (Same, "next: b"),
                (Added, "save_as: x"),
            ]
        );
        assert_eq!(super::lines("", "").unwrap(), vec![]);
        assert_eq!(super::lines("x", "").unwrap(), vec![(Removed, "x")]);
        let long = "x\n".repeat(super::MAX_LINES + 1);
        assert!(super::lines(&long, "x").is_none());
    }
}
