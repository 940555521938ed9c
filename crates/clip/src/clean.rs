//! Text cleaning before tokenisation: what CLIP's tokenizer does to a prompt before splitting it.
//!
//! OpenAI's tokenizer cleans a prompt in three steps: `ftfy.fix_text`, HTML unescaping (twice),
//! then collapsing whitespace. Its module imports `ftfy` unconditionally, so there is no
//! ftfy-free path in OpenAI's code: without the package the tokenizer cannot be imported at
//! all. (Other CLIP ports differ here: some fall back to other cleaning when `ftfy` is missing,
//! and then tokenise some prompts differently.) [`clean`] therefore reproduces the reference
//! *with* ftfy (version 6, default settings): every deterministic, table-driven fix of
//! `fix_text` is implemented, in ftfy's order and with its fixed-point loop:
//!
//! * HTML entities ending in `;` (and all-caps Latin ones such as `&EACUTE;`), unless the line
//!   or an earlier one contains `<`;
//! * C1 control characters read as Windows-1252 (`\u{93}` → `“`);
//! * Latin ligatures (`ﬁ` → `fi`), half- and full-width forms (`Ａ` → `A`, U+3000 → space);
//! * curly quotes → straight quotes (so `don’t` splits like `don't`);
//! * ANSI terminal escapes and unwanted control characters removed;
//! * Unicode NFC normalisation.
//!
//! Not reproduced: ftfy's *mojibake repair* (`fix_encoding`: text that looks like UTF-8 bytes
//! decoded as Latin-1 or Windows-1252, such as `cafÃ©`, is re-decoded by heuristics). Such
//! text is tokenised as written here. Line-break normalisation is a no-op for tokenisation (all
//! line breaks become one space anyway) and unpaired surrogates cannot occur in Rust strings.
//! Character tables (lower-casing, letters, NFC) are those of the Rust toolchain and the
//! `regex` / `unicode-normalization` crates; they can differ from Python's for characters
//! added to Unicode recently.

use std::collections::HashMap;
use std::sync::OnceLock;

use regex::Regex;
use unicode_normalization::UnicodeNormalization;

/// The HTML5 named character references (`name` with or without its `;` → text), as Python's
/// `html.entities.html5` lists them (the WHATWG table).
fn html5() -> &'static HashMap<&'static str, String> {
    static TABLE: OnceLock<HashMap<&'static str, String>> = OnceLock::new();
    TABLE.get_or_init(|| {
        include_str!("html5_entities.tsv")
            .lines()
            .filter_map(|line| {
                let (name, codes) = line.split_once('\t')?;
                let text = codes
                    .split(' ')
                    .map(|c| u32::from_str_radix(c, 16).ok().and_then(char::from_u32))
                    .collect::<Option<String>>()?;
                Some((name, text))
            })
            .collect()
    })
}

/// ftfy's entity table: every `&name;` of HTML5, plus the all-caps spelling of lower-case names
/// whose all-caps form is not itself an entity (`&EACUTE;` → `É`).
fn ftfy_entities() -> &'static HashMap<String, String> {
    static TABLE: OnceLock<HashMap<String, String>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = HashMap::new();
        for (name, text) in html5() {
            if !name.ends_with(';') {
                continue;
            }
            table.insert(format!("&{name}"), text.clone());
            if *name == name.to_lowercase() {
                let upper = format!("&{}", name.to_uppercase());
                if html_unescape(&upper) == upper {
                    table.insert(upper, text.to_uppercase());
                }
            }
        }
        table
    })
}

/// What a numeric reference to a C1 code point (or to 0 / CR) stands for (HTML5's table of
/// invalid references; also Windows-1252 with undefined bytes kept, as ftfy reads C1 controls).
fn invalid_charref(n: u32) -> Option<char> {
    const C1: [char; 32] = [
        '\u{20ac}', '\u{81}', '\u{201a}', '\u{192}', '\u{201e}', '\u{2026}', '\u{2020}', '\u{2021}', '\u{2c6}',
        '\u{2030}', '\u{160}', '\u{2039}', '\u{152}', '\u{8d}', '\u{17d}', '\u{8f}', '\u{90}', '\u{2018}', '\u{2019}',
        '\u{201c}', '\u{201d}', '\u{2022}', '\u{2013}', '\u{2014}', '\u{2dc}', '\u{2122}', '\u{161}', '\u{203a}',
        '\u{153}', '\u{9d}', '\u{17e}', '\u{178}',
    ];
    match n {
        0x00 => Some('\u{fffd}'),
        0x0d => Some('\r'),
        0x80..=0x9f => Some(C1[(n - 0x80) as usize]),
        _ => None,
    }
}

/// Code points that a numeric reference silently drops (HTML5).
fn invalid_codepoint(n: u32) -> bool {
    matches!(n, 0x1..=0x8 | 0xb | 0xe..=0x1f | 0x7f..=0x9f | 0xfdd0..=0xfdef) || (n & 0xfffe) == 0xfffe
}

/// Python's `html.unescape`: named references (longest prefix without `;` for the legacy ones),
/// decimal and hexadecimal references with HTML5's error handling.
pub fn html_unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '&' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        match charref(&chars, i + 1) {
            Some((end, text)) => {
                out.push_str(&text);
                i = end;
            }
            None => {
                out.push('&');
                i += 1;
            }
        }
    }
    out
}

/// The reference starting after an `&` at `start`: (end index, replacement).
fn charref(chars: &[char], start: usize) -> Option<(usize, String)> {
    let at = |k: usize| chars.get(k).copied();
    if at(start) == Some('#') {
        let (radix, digits_start) = match at(start + 1) {
            Some('x' | 'X') => (16, start + 2),
            _ => (10, start + 1),
        };
        let mut end = digits_start;
        while at(end).is_some_and(|c| c.is_digit(radix)) {
            end += 1;
        }
        if end == digits_start {
            return None;
        }
        // Saturate: anything past U+10FFFF is replaced anyway.
        let num = chars[digits_start..end].iter().fold(0u64, |n, c| {
            (n * u64::from(radix) + u64::from(c.to_digit(radix).unwrap_or(0))).min(0x0100_0000)
        }) as u32;
        if at(end) == Some(';') {
            end += 1;
        }
        let text = if let Some(c) = invalid_charref(num) {
            c.to_string()
        } else if (0xd800..=0xdfff).contains(&num) || num > 0x10ffff {
            "\u{fffd}".to_string()
        } else if invalid_codepoint(num) {
            String::new()
        } else {
            char::from_u32(num).map(String::from).unwrap_or_default()
        };
        return Some((end, text));
    }
    let mut end = start;
    while end - start < 32 && at(end).is_some_and(|c| !matches!(c, '\t' | '\n' | '\x0c' | ' ' | '<' | '&' | '#' | ';'))
    {
        end += 1;
    }
    if end == start {
        return None;
    }
    if at(end) == Some(';') {
        end += 1;
    }
    let name: String = chars[start..end].iter().collect();
    let table = html5();
    if let Some(text) = table.get(name.as_str()) {
        return Some((end, text.clone()));
    }
    // The longest prefix (of at least two characters) that is a reference.
    for x in (2..end - start).rev() {
        let prefix: String = chars[start..start + x].iter().collect();
        if let Some(text) = table.get(prefix.as_str()) {
            let rest: String = chars[start + x..end].iter().collect();
            return Some((end, format!("{text}{rest}")));
        }
    }
    Some((end, format!("&{name}")))
}

/// ftfy's own entity decoding: `&#?[0-9A-Za-z]{1,24};` when it is a known entity or a numeric
/// reference that decodes completely.
fn ftfy_unescape(text: &str) -> String {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| Regex::new("&#?[0-9A-Za-z]{1,24};").expect("valid pattern"));
    re.replace_all(text, |caps: &regex::Captures| {
        let m = &caps[0];
        if let Some(t) = ftfy_entities().get(m) {
            t.clone()
        } else if m.starts_with("&#") {
            let unescaped = html_unescape(m);
            if unescaped.contains(';') {
                m.to_string()
            } else {
                unescaped
            }
        } else {
            m.to_string()
        }
    })
    .into_owned()
}

fn ligature(c: char) -> Option<&'static str> {
    Some(match c {
        'Ĳ' => "IJ",
        'ĳ' => "ij",
        'ŉ' => "ʼn",
        'Ǳ' => "DZ",
        'ǲ' => "Dz",
        'ǳ' => "dz",
        'Ǆ' => "DŽ",
        'ǅ' => "Dž",
        'ǆ' => "dž",
        'Ǉ' => "LJ",
        'ǈ' => "Lj",
        'ǉ' => "lj",
        'Ǌ' => "NJ",
        'ǋ' => "Nj",
        'ǌ' => "nj",
        'ﬀ' => "ff",
        'ﬁ' => "fi",
        'ﬂ' => "fl",
        'ﬃ' => "ffi",
        'ﬄ' => "ffl",
        'ﬅ' => "ſt",
        'ﬆ' => "st",
        _ => return None,
    })
}

/// Control characters ftfy removes.
fn unwanted_control(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{e}'..='\u{1f}' | '\u{7f}' | '\u{206a}'..='\u{206f}' | '\u{feff}' | '\u{fff9}'..='\u{fffc}')
}

/// One pass of ftfy's fixes (mojibake repair excepted) over one line.
fn ftfy_pass(text: &str, unescape: bool) -> String {
    static ANSI: OnceLock<Regex> = OnceLock::new();
    let ansi = ANSI.get_or_init(|| Regex::new(r"\x1b\[(?:\d|;)*[a-zA-Z]").expect("valid pattern"));
    let text = if unescape {
        ftfy_unescape(text)
    } else {
        text.to_string()
    };
    let mut fixed = String::with_capacity(text.len());
    for c in text.chars() {
        // C1 controls as Windows-1252, then ligatures, widths and quotes: ftfy's order (no
        // table's output is changed by a later table except by the quotes, applied to all).
        let c = match c as u32 {
            0x80..=0x9f => invalid_charref(c as u32).unwrap_or(c),
            _ => c,
        };
        if let Some(s) = ligature(c) {
            fixed.extend(s.chars().map(uncurl));
            continue;
        }
        let c = match c as u32 {
            0x3000 => ' ',
            0xff01..=0xffef => {
                let nfkc: String = std::iter::once(c).nfkc().collect();
                if nfkc != c.to_string() {
                    fixed.extend(nfkc.chars().map(uncurl));
                    continue;
                }
                c
            }
            _ => c,
        };
        fixed.push(uncurl(c));
    }
    let fixed = ansi.replace_all(&fixed, "");
    let fixed: String = fixed.chars().filter(|c| !unwanted_control(*c)).collect();
    fixed.as_str().nfc().collect()
}

fn uncurl(c: char) -> char {
    match c {
        '\u{2bc}' | '\u{2018}'..='\u{201b}' => '\'',
        '\u{201c}'..='\u{201f}' => '"',
        _ => c,
    }
}

/// `ftfy.fix_text` with default settings, mojibake repair excepted (see the module docs).
pub fn fix_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    // "auto": entities are decoded until a line containing `<` (which may be HTML) is seen.
    let mut unescape = true;
    for segment in text.split_inclusive('\n') {
        if unescape && segment.contains('<') {
            unescape = false;
        }
        let mut current = segment.to_string();
        loop {
            let next = ftfy_pass(&current, unescape);
            if next == current {
                break;
            }
            current = next;
        }
        out.push_str(&current);
    }
    out
}

/// Python's `str.isspace`.
fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// The whole cleaning of a prompt before pre-tokenisation: `fix_text`, `html.unescape` twice,
/// strip, every whitespace run → one space, strip, lower-case.
pub fn clean(text: &str) -> String {
    let text = html_unescape(&html_unescape(&fix_text(text)));
    let text = text.trim_matches(is_py_space);
    let mut out = String::with_capacity(text.len());
    let mut in_space = false;
    for c in text.chars() {
        // `\s` of the reference's regex: the Unicode White_Space property.
        if c.is_whitespace() {
            if !in_space {
                out.push(' ');
            }
            in_space = true;
        } else {
            out.push(c);
            in_space = false;
        }
    }
    out.trim_matches(is_py_space).to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_references() {
        assert_eq!(html_unescape("&amp;amp; &lt;b&gt; &eacute"), "&amp; <b> é");
        assert_eq!(
            html_unescape("&notit; &copy2024 &#65;&#x42;&#0;&#128;"),
            "¬it; ©2024 AB\u{fffd}€"
        );
        assert_eq!(html_unescape("& &# &#x; &zzz;"), "& &# &#x; &zzz;");
        assert_eq!(ftfy_unescape("&EACUTE; &eacute &#x1F600;"), "É &eacute \u{1F600}");
    }

    #[test]
    fn ftfy_fixes() {
        assert_eq!(fix_text("it\u{2019}s \u{fb01}ne\u{3000}\u{ff21}"), "it's fine A");
        assert_eq!(fix_text("\u{93}q\u{94}"), "\"q\"");
        assert_eq!(fix_text("e\u{301}\u{1b}[31m!\u{1b}[0m"), "\u{e9}!");
        assert_eq!(fix_text("<b>&amp;</b>\n&amp;"), "<b>&amp;</b>\n&amp;");
        assert_eq!(fix_text("&amp;amp;amp;"), "&");
    }

    #[test]
    fn whitespace_and_case() {
        assert_eq!(clean("  Hello,\t\n WORLD \u{a0} "), "hello, world");
        assert_eq!(clean(""), "");
    }
}
