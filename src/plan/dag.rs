//! Ordering things that depend on each other (models on models, metrics on
//! metrics): a topological order, or the cycle that prevents one.

use std::collections::BTreeMap;

/// A cycle in `edges` (node -> the nodes it depends on), as the path
/// `a -> b -> ... -> a`, or None.
pub fn find_cycle<'a>(edges: &BTreeMap<&'a str, Vec<&'a str>>) -> Option<Vec<&'a str>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit<'a>(
        node: &'a str,
        edges: &BTreeMap<&'a str, Vec<&'a str>>,
        marks: &mut BTreeMap<&'a str, Mark>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<&'a str>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Visiting) => {
                let start = path.iter().position(|n| *n == node).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(node);
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node, Mark::Visiting);
        path.push(node);
        for dep in edges.get(node).into_iter().flatten() {
            if let Some(c) = visit(dep, edges, marks, path) {
                return Some(c);
            }
        }
        path.pop();
        marks.insert(node, Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for node in edges.keys() {
        if let Some(c) = visit(node, edges, &mut marks, &mut Vec::new()) {
            return Some(c);
        }
    }
    None
}

/// `wanted` and everything they depend on, dependencies first.
pub fn topological<'a>(
    edges: &BTreeMap<&'a str, Vec<&'a str>>,
    wanted: impl IntoIterator<Item = &'a str>,
) -> Vec<&'a str> {
    fn visit<'a>(
        node: &'a str,
        edges: &BTreeMap<&'a str, Vec<&'a str>>,
        seen: &mut Vec<&'a str>,
        out: &mut Vec<&'a str>,
    ) {
        if seen.contains(&node) {
            return;
        }
        seen.push(node);
        for dep in edges.get(node).into_iter().flatten() {
            visit(dep, edges, seen, out);
        }
        out.push(node);
    }
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for w in wanted {
        visit(w, edges, &mut seen, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_cycle_path() {
        let edges = BTreeMap::from([("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"])]);
        assert_eq!(find_cycle(&edges).unwrap(), ["a", "b", "c", "a"]);
    }

    #[test]
    fn orders_dependencies_first() {
        let edges = BTreeMap::from([("a", vec!["b", "c"]), ("b", vec!["c"]), ("c", vec![])]);
        assert_eq!(topological(&edges, ["a"]), ["c", "b", "a"]);
        assert!(find_cycle(&edges).is_none());
    }
}
