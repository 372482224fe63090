//! Text from PDF documents, extracted locally so documents never leave the
//! server just to be read.
//!
//! pdf-extract panics on many real-world PDFs (missing fonts, odd encodings,
//! broken streams), so every call into it runs under `catch_unwind`, and on a
//! blocking thread because a large document takes a while.

use std::panic::{AssertUnwindSafe, catch_unwind};

// pdf-extract re-exports lopdf, so `Document` here is the very type it reads
// and no second lopdf version can creep in.
use pdf_extract::{Document, PlainTextOutput, output_doc_page};

/// The text of a document, whitespace normalised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PdfText {
    /// Pages are separated by a blank line.
    pub text: String,
    /// Every page of the document, read or not.
    pub pages: usize,
    /// The text went past the budget and was cut.
    pub truncated: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PdfError {
    #[error("the PDF has no text layer (scanned or empty)")]
    NoText,
    #[error("the file is not a readable PDF: {0}")]
    Corrupt(String),
}

/// Extracts the text of a PDF, normalises whitespace (runs of spaces become
/// one, runs of blank lines one blank line) and cuts it to `budget_chars`
/// characters.
pub async fn extract_text(bytes: Vec<u8>, budget_chars: usize) -> Result<PdfText, PdfError> {
    tokio::task::spawn_blocking(move || extract_blocking(&bytes, budget_chars))
        .await
        .unwrap_or_else(|e| Err(PdfError::Corrupt(format!("the extraction stopped: {e}"))))
}

fn extract_blocking(bytes: &[u8], budget_chars: usize) -> Result<PdfText, PdfError> {
    let mut doc =
        unpanic(|| Document::load_mem(bytes))?.map_err(|e| PdfError::Corrupt(e.to_string()))?;
    if doc.is_encrypted() {
        // Many PDFs are encrypted with an empty user password only to carry
        // permission flags; those open without asking anyone.
        unpanic(|| doc.decrypt(""))?
            .map_err(|_| PdfError::Corrupt("the PDF is password-protected".into()))?;
    }
    let page_numbers: Vec<u32> = unpanic(|| doc.get_pages().into_keys().collect())?;
    let pages = page_numbers.len();

    let mut text = String::new();
    let mut chars = 0;
    let mut failure = None;
    for number in page_numbers {
        let page = match unpanic(|| page_text(&doc, number)) {
            Ok(Ok(page)) => normalise(&page),
            Ok(Err(e)) => {
                failure.get_or_insert(format!("page {number}: {e}"));
                continue;
            }
            // After a panic the rest of the document is likely just as
            // broken; stopping keeps it to one panic message in the log.
            Err(e) => {
                failure.get_or_insert(format!("page {number}: {e}"));
                break;
            }
        };
        if page.is_empty() {
            continue;
        }
        if !text.is_empty() {
            text.push_str("\n\n");
            chars += 2;
        }
        text.push_str(&page);
        chars += page.chars().count();
        // The remaining pages could only be cut away again.
        if chars > budget_chars {
            break;
        }
    }

    if text.is_empty() {
        return Err(match failure {
            Some(reason) => PdfError::Corrupt(reason),
            None => PdfError::NoText,
        });
    }
    if let Some(reason) = failure {
        tracing::warn!(%reason, pages, "part of a PDF could not be read; using the rest");
    }
    let truncated = chars > budget_chars;
    if truncated {
        text = cut(&text, budget_chars);
    }
    Ok(PdfText {
        text,
        pages,
        truncated,
    })
}

fn page_text(doc: &Document, number: u32) -> Result<String, pdf_extract::OutputError> {
    let mut text = String::new();
    output_doc_page(doc, &mut PlainTextOutput::new(&mut text), number)?;
    Ok(text)
}

/// Runs `f`, turning a panic into [`PdfError::Corrupt`]. The default panic
/// hook still prints the panic once; a global hook is not ours to replace.
fn unpanic<T>(f: impl FnOnce() -> T) -> Result<T, PdfError> {
    // The document is only read after loading, so a panic cannot leave it
    // half-changed for a later page.
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown failure".into());
        PdfError::Corrupt(format!("the PDF reader failed: {message}"))
    })
}

/// Trims every line, collapses runs of spaces and tabs into one space and runs
/// of blank lines into one blank line, and drops control characters.
fn normalise(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut blank_lines = 0;
    for line in raw.split(['\n', '\r', '\u{b}', '\u{c}']) {
        let words: Vec<&str> = line
            .split(|c: char| c.is_whitespace() || c.is_control())
            .filter(|w| !w.is_empty())
            .collect();
        if words.is_empty() {
            blank_lines += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank_lines > 0 { "\n\n" } else { "\n" });
        }
        blank_lines = 0;
        for (i, word) in words.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(word);
        }
    }
    out
}

/// The first `max` characters, without trailing whitespace left by the cut.
fn cut(text: &str, max: usize) -> String {
    let end = text.char_indices().nth(max).map_or(text.len(), |(i, _)| i);
    text[..end].trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalise_collapses_spaces_and_blank_lines() {
        assert_eq!(
            normalise("\n\n  Hello   \t world \r\n\n\n\nnext\u{c}line\u{0}end  \n\n"),
            "Hello world\n\nnext\nline end"
        );
        assert_eq!(normalise("a\nb\n\nc"), "a\nb\n\nc");
        assert_eq!(normalise(" \n\t\n"), "");
        assert_eq!(normalise("non\u{a0}breaking"), "non breaking");
    }

    #[test]
    fn cut_is_char_safe() {
        assert_eq!(cut("héllo wörld", 2), "hé");
        assert_eq!(cut("héllo wörld", 6), "héllo");
        assert_eq!(cut("héllo", 50), "héllo");
        assert_eq!(cut("日本語", 0), "");
    }

    #[test]
    fn panics_become_corrupt() {
        let e = unpanic(|| -> u8 { panic!("boom") }).unwrap_err();
        assert_eq!(e, PdfError::Corrupt("the PDF reader failed: boom".into()));
        let e = unpanic(|| -> u8 { panic!("{}", String::from("formatted")) }).unwrap_err();
        assert_eq!(
            e,
            PdfError::Corrupt("the PDF reader failed: formatted".into())
        );
    }
}
