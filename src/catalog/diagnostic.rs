//! Catalog diagnostics: what is wrong, where (file, line, column) and how to
//! fix it. Rendered like a compiler error so an analyst can jump to the line.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// A text file of the catalog kept in memory so that byte spans can be
/// turned into line and column numbers when an error is reported.
#[derive(Debug, Clone)]
pub struct SourceText {
    pub path: PathBuf,
    pub text: String,
}

impl SourceText {
    pub fn new(path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            text: text.into(),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = self.text[line_start..offset].chars().count() + 1;
        (line, col)
    }

    fn line_text(&self, line: usize) -> &str {
        self.text.lines().nth(line - 1).unwrap_or("")
    }
}

/// Where a diagnostic points: a file and a byte range inside it.
#[derive(Debug, Clone)]
pub struct Location {
    pub source: SourceText,
    pub span: Range<usize>,
}

/// One problem found in the catalog.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub message: String,
    pub location: Option<Location>,
    pub help: Option<String>,
    /// A path to name when there is no span (a missing SQL file, say).
    pub file: Option<PathBuf>,
}

impl Diagnostic {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            location: None,
            help: None,
            file: None,
        }
    }

    pub fn at(mut self, source: &SourceText, span: Range<usize>) -> Self {
        self.location = Some(Location {
            source: source.clone(),
            span,
        });
        self
    }

    pub fn in_file(mut self, path: &Path) -> Self {
        self.file = Some(path.to_path_buf());
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error: {}", self.message)?;
        if let Some(loc) = &self.location {
            let (line, col) = loc.source.line_col(loc.span.start);
            let text = loc.source.line_text(line);
            let width = line.to_string().len();
            writeln!(
                f,
                "{:width$}--> {}:{}:{}",
                "",
                loc.source.path.display(),
                line,
                col
            )?;
            writeln!(f, "{:width$} |", "")?;
            writeln!(f, "{line} | {text}")?;
            let on_line = text.chars().count().saturating_sub(col - 1).max(1);
            let len = loc.source.text[loc.span.clone()]
                .chars()
                .take_while(|c| *c != '\n')
                .count()
                .clamp(1, on_line);
            writeln!(
                f,
                "{:width$} | {}{}",
                "",
                " ".repeat(col - 1),
                "^".repeat(len)
            )?;
        } else if let Some(file) = &self.file {
            writeln!(f, "  --> {}", file.display())?;
        }
        if let Some(help) = &self.help {
            writeln!(f, "  = help: {help}")?;
        }
        Ok(())
    }
}

/// Every problem of a catalog, reported together.
#[derive(Debug, Clone, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// `Ok(())` when nothing was found, else all the diagnostics.
    pub fn into_result(self) -> Result<(), Diagnostics> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "{d}")?;
        }
        let n = self.0.len();
        write!(f, "catalog has {n} error{}", if n == 1 { "" } else { "s" })
    }
}

/// The closest of `candidates` to `name`, if it is close enough to be a
/// plausible typo ("did you mean").
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(d, c)| *d <= (c.len().max(name.len()) / 3).max(2))
        .min_by_key(|(d, c)| (*d, *c))
        .map(|(_, c)| c)
}

/// "did you mean `x`?" or the list of valid names.
pub fn suggestion<'a>(
    name: &str,
    what: &str,
    candidates: impl IntoIterator<Item = &'a str> + Clone,
) -> String {
    match did_you_mean(name, candidates.clone()) {
        Some(best) => format!("did you mean `{best}`?"),
        None => {
            let mut all: Vec<&str> = candidates.into_iter().collect();
            all.sort_unstable();
            if all.is_empty() {
                format!("no {what} is defined")
            } else {
                format!("valid {what}s: {}", all.join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let s = SourceText::new("m.toml", "a = 1\nbb = 2\n");
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(6), (2, 1));
        assert_eq!(s.line_col(9), (2, 4));
    }

    #[test]
    fn suggests_near_misses_only() {
        let names = ["new_mrr", "churned_mrr", "mrr_end"];
        assert_eq!(did_you_mean("churn_mrr", names), Some("churned_mrr"));
        assert_eq!(did_you_mean("revenue", names), None);
    }
}
