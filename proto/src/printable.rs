//! Text from outside (URLs, torrent names, messages from agents and trackers) made safe for a log or
//! a terminal: control characters and bidirectional overrides are escaped, so nobody can forge a log
//! line, clear a screen or reorder what a person reads; very long text is cut.

use std::fmt;

/// Displays its text with every control character escaped (`\n`, `\u{1b}`), cut after
/// [`Printable::MAX_CHARS`] characters.
#[derive(Debug, Clone, Copy)]
pub struct Printable<'a>(pub &'a str);

impl Printable<'_> {
    pub const MAX_CHARS: usize = 512;
}

impl fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        escape(f, self.0, Self::MAX_CHARS)
    }
}

/// `s` made printable (see [`Printable`]).
pub fn printable(s: &str) -> String {
    Printable(s).to_string()
}

/// A whole line for a terminal or a log (our own text with outside text in it): escaped like
/// [`Printable`], cut after `max_chars` characters.
pub fn printable_line(s: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max_chars + 3));
    let _ = escape(&mut out, s, max_chars);
    out
}

fn escape(out: &mut impl fmt::Write, s: &str, max_chars: usize) -> fmt::Result {
    for (i, c) in s.chars().enumerate() {
        if i == max_chars {
            return out.write_str("...");
        }
        if needs_escape(c) {
            write!(out, "{}", c.escape_debug())?;
        } else {
            out.write_char(c)?;
        }
    }
    Ok(())
}

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_a_terminal_would_act_on() {
        assert_eq!(printable("plain name/ü.iso"), "plain name/ü.iso");
        assert_eq!(printable("a\nb\r\u{1b}[2Jc\u{7f}\u{9b}"), "a\\nb\\r\\u{1b}[2Jc\\u{7f}\\u{9b}");
        assert_eq!(printable("x\u{202e}y"), "x\\u{202e}y");
        let long = "a".repeat(Printable::MAX_CHARS + 10);
        assert_eq!(printable(&long).len(), Printable::MAX_CHARS + 3);
        assert_eq!(printable_line("a\u{1b}]0;x\u{7}b", 100), "a\\u{1b}]0;x\\u{7}b");
        assert_eq!(printable_line("abcdef", 3), "abc...");
    }
}
