//! TOML config errors in one line, naming the line and the key (the agent's and the controller's
//! config files both report this way).

/// One line from a TOML error: `line N: message`.
pub fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let start = span.start.min(text.len());
            let line = text[..start].matches('\n').count() + 1;
            let line_text = text.lines().nth(line - 1).unwrap_or_default();
            match line_text.split_once('=').map(|(k, _)| k.trim()).filter(|k| !k.is_empty()) {
                Some(key) if !msg.contains(key) => format!("line {line}, key `{key}`: {msg}"),
                _ => format!("line {line}: {msg}"),
            }
        }
        None => msg,
    }
}
