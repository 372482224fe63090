//! extract_text on PDFs written here byte by byte, so each test controls
//! exactly what the reader sees.

use confab_ai::pdf::{PdfError, PdfText, extract_text};

/// One page: lines of text in WinAnsiEncoding, drawn top down.
struct Page<'a> {
    lines: &'a [&'a [u8]],
    /// Without one pdf-extract panics; real files do leave it out.
    media_box: bool,
}

fn page<'a>(lines: &'a [&'a [u8]]) -> Page<'a> {
    Page {
        lines,
        media_box: true,
    }
}

/// A minimal PDF 1.4: catalog, page tree, one Helvetica font, and a page
/// object and content stream per page, with exact xref offsets.
fn pdf(pages: &[Page]) -> Vec<u8> {
    let mut objects: Vec<Vec<u8>> = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        {
            let kids: Vec<String> = (0..pages.len())
                .map(|i| format!("{} 0 R", 4 + 2 * i))
                .collect();
            format!(
                "<< /Type /Pages /Kids [{}] /Count {} >>",
                kids.join(" "),
                pages.len()
            )
            .into_bytes()
        },
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
            .to_vec(),
    ];
    for (i, p) in pages.iter().enumerate() {
        let mut content = b"BT /F1 12 Tf 72 720 Td".to_vec();
        for (j, line) in p.lines.iter().enumerate() {
            if j > 0 {
                content.extend_from_slice(b" 0 -16 Td");
            }
            content.extend_from_slice(b" (");
            for &b in *line {
                if matches!(b, b'(' | b')' | b'\\') {
                    content.push(b'\\');
                }
                content.push(b);
            }
            content.extend_from_slice(b") Tj");
        }
        content.extend_from_slice(b" ET");

        let media_box = if p.media_box {
            " /MediaBox [0 0 612 792]"
        } else {
            ""
        };
        objects.push(
            format!(
                "<< /Type /Page /Parent 2 0 R{media_box} /Resources << /Font << /F1 3 0 R >> >> /Contents {} 0 R >>",
                5 + 2 * i
            )
            .into_bytes(),
        );
        let mut stream = format!("<< /Length {} >>\nstream\n", content.len()).into_bytes();
        stream.extend_from_slice(&content);
        stream.extend_from_slice(b"\nendstream");
        objects.push(stream);
    }

    let mut out = b"%PDF-1.4\n%\xE2\xE3\xCF\xD3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    }
    let xref = out.len();
    let size = objects.len() + 1;
    // Each entry is exactly 20 bytes, the end of line included.
    out.extend_from_slice(format!("xref\n0 {size}\n0000000000 65535 f \n").as_bytes());
    for offset in offsets {
        out.extend_from_slice(format!("{offset:010} 00000 n \n").as_bytes());
    }
    out.extend_from_slice(
        format!("trailer\n<< /Size {size} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n").as_bytes(),
    );
    out
}

#[tokio::test]
async fn one_page() {
    let text = extract_text(pdf(&[page(&[b"Hello"])]), 10_000)
        .await
        .unwrap();
    assert_eq!(
        text,
        PdfText {
            text: "Hello".into(),
            pages: 1,
            truncated: false
        }
    );
}

#[tokio::test]
async fn three_pages_in_order() {
    let doc = pdf(&[
        page(&[b"First page, top", b"first page (end)"]),
        page(&[b"Second page"]),
        page(&[b"Third   page  with    spaces"]),
    ]);
    let text = extract_text(doc, 10_000).await.unwrap();
    assert_eq!(text.pages, 3);
    assert!(!text.truncated);
    assert_eq!(
        text.text,
        "First page, top\nfirst page (end)\n\nSecond page\n\nThird page with spaces"
    );
}

#[tokio::test]
async fn empty_pages_are_skipped() {
    let doc = pdf(&[page(&[b"Cover"]), page(&[]), page(&[b"Back"])]);
    let text = extract_text(doc, 10_000).await.unwrap();
    assert_eq!(text.pages, 3);
    assert_eq!(text.text, "Cover\n\nBack");
}

#[tokio::test]
async fn empty_page_has_no_text() {
    let err = extract_text(pdf(&[page(&[])]), 10_000).await.unwrap_err();
    assert_eq!(err, PdfError::NoText);
    let err = extract_text(pdf(&[page(&[b"   "]), page(&[])]), 10_000)
        .await
        .unwrap_err();
    assert_eq!(err, PdfError::NoText);
}

#[tokio::test]
async fn garbage_is_corrupt() {
    // A fixed xorshift sequence: random-looking, the same on every run.
    let mut x: u32 = 0x9E37_79B9;
    let garbage: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let mut with_header = b"%PDF-1.7\n".to_vec();
    with_header.extend_from_slice(&garbage);
    for bytes in [garbage, with_header, Vec::new(), b"%PDF-".to_vec()] {
        let err = extract_text(bytes, 10_000).await.unwrap_err();
        assert!(matches!(err, PdfError::Corrupt(_)), "{err:?}");
    }
}

#[tokio::test]
async fn truncated_file_is_corrupt() {
    let whole = pdf(&[page(&[b"Hello"]), page(&[b"World"])]);
    for keep in [whole.len() / 2, whole.len() - 30, 20] {
        let err = extract_text(whole[..keep].to_vec(), 10_000)
            .await
            .unwrap_err();
        assert!(matches!(err, PdfError::Corrupt(_)), "{keep}: {err:?}");
    }
}

#[tokio::test]
async fn reader_panic_is_corrupt() {
    let doc = pdf(&[Page {
        lines: &[b"Hello"],
        media_box: false,
    }]);
    let err = extract_text(doc, 10_000).await.unwrap_err();
    let PdfError::Corrupt(why) = &err else {
        panic!("{err:?}")
    };
    assert!(why.contains("MediaBox"), "{why}");
}

#[tokio::test]
async fn pages_before_a_broken_one_are_kept() {
    let doc = pdf(&[
        page(&[b"Readable"]),
        Page {
            lines: &[b"Broken"],
            media_box: false,
        },
        page(&[b"After"]),
    ]);
    let text = extract_text(doc, 10_000).await.unwrap();
    assert_eq!(text.text, "Readable");
    assert_eq!(text.pages, 3);
}

#[tokio::test]
async fn budget_cuts_on_a_character_boundary() {
    // "Café crème brûlée" in WinAnsiEncoding: é, è and û are one byte in
    // the PDF and two in UTF-8.
    let line: &[u8] = b"Caf\xE9 cr\xE8me br\xFBl\xE9e";
    let lines = [line; 6];
    let doc = pdf(&[page(&lines), page(&lines)]);
    let full = extract_text(doc.clone(), 10_000).await.unwrap();
    assert!(!full.truncated);
    assert!(
        full.text.starts_with("Café crème brûlée\nCafé"),
        "{}",
        full.text
    );
    let total = full.text.chars().count();

    for budget in [0, 1, 4, 5, 9, 50, 120, total - 1] {
        let cut = extract_text(doc.clone(), budget).await.unwrap();
        assert!(cut.truncated, "{budget}");
        assert_eq!(cut.pages, 2);
        assert!(cut.text.chars().count() <= budget, "{budget}: {}", cut.text);
        assert!(full.text.starts_with(&cut.text), "{budget}: {}", cut.text);
        assert_eq!(cut.text, cut.text.trim_end());
    }
    assert_eq!(extract_text(doc.clone(), 4).await.unwrap().text, "Café");

    let exact = extract_text(doc, total).await.unwrap();
    assert!(!exact.truncated);
    assert_eq!(exact.text, full.text);
}
