//! TOML deserialisation errors named by key path (`train.lr: invalid type …`) rather than by
//! line, for mpcl's config parsers: the toy experiment's here and the trainer's.

/// A deserialisation error of `text` as `key.path: message`, the key found from the
/// error's place in `text`. The line and column toml reports instead would mislead when
/// `text` is a config that `cargo xtask experiment` generated from the user's file. Errors
/// that no key holds (TOML syntax) keep toml's message with its line.
pub fn describe(e: &toml::de::Error, text: &str) -> String {
    let path = e.span().and_then(|span| {
        let root = toml::de::DeValue::Table(toml::de::DeTable::parse(text).ok()?.into_inner());
        let mut path = Vec::new();
        key_at(&root, span.start, &mut path).then(|| path.concat())
    });
    match path {
        Some(path) => format!("{path}: {}", e.message().trim_end()),
        None => e.to_string().trim_end().to_owned(),
    }
}

/// Whether byte `at` lies inside `value`'s keys or elements; if so, the innermost key or
/// element that holds it has been pushed onto `path` (`.key` and `[i]` segments, the
/// first without its dot).
fn key_at(value: &toml::de::DeValue<'_>, at: usize, path: &mut Vec<String>) -> bool {
    use toml::de::DeValue;
    match value {
        DeValue::Table(table) => table.iter().any(|(key, value)| {
            let dot = if path.is_empty() { "" } else { "." };
            path.push(format!("{dot}{}", key.get_ref()));
            let found = key_at(value.get_ref(), at, path)
                || key.span().contains(&at)
                || value.span().contains(&at);
            if !found {
                path.pop();
            }
            found
        }),
        DeValue::Array(items) => items.iter().enumerate().any(|(i, item)| {
            path.push(format!("[{i}]"));
            let found = key_at(item.get_ref(), at, path) || item.span().contains(&at);
            if !found {
                path.pop();
            }
            found
        }),
        _ => false,
    }
}
