//! TOML deserialisation errors named by key path (`train.lr: invalid type …`) rather than by
//! line, for mpcl's config parsers: the toy experiment's here and the trainer's.

use toml::de::DeValue;

/// A deserialisation error of `text` as `key.path: message`, the key found from the
/// error's place in `text`. The line and column toml reports instead would mislead when
/// `text` is a config that `cargo xtask experiment` generated from the user's file. Errors
/// that no key holds (TOML syntax) keep toml's message with its line.
///
/// A table read on its own (as `[augment]` is) can only be placed at its section; its
/// reader names the key inside as `relative.path: message`. When that path leads to a key
/// of `text` from the section or a table around it, the two are joined into one path.
pub fn describe(e: &toml::de::Error, text: &str) -> String {
    let message = e.message().trim_end();
    let Some((root, section)) = e.span().and_then(|span| {
        let root = DeValue::Table(toml::de::DeTable::parse(text).ok()?.into_inner());
        let mut path = Vec::new();
        key_at(&root, span.start, &mut path).then_some((root, path))
    }) else {
        return e.to_string().trim_end().to_owned();
    };
    let inner = message.split_once(": ").and_then(|(key, rest)| {
        let key = parse_path(key)?;
        (0..=section.len()).rev().find_map(|outer| {
            let path = [&section[..outer], &key[..]].concat();
            lookup(&root, &path).then_some((path, rest))
        })
    });
    match inner {
        Some((path, rest)) => format!("{}: {rest}", render(&path)),
        None => format!("{}: {message}", render(&section)),
    }
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

/// `a.b[1].c`.
fn render(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(key) if out.is_empty() => out.push_str(key),
            Step::Key(key) => {
                out.push('.');
                out.push_str(key);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// The steps of a bare-key path such as `view1.crop_scale[1]`; `None` for anything else,
/// such as the start of an ordinary message.
fn parse_path(text: &str) -> Option<Vec<Step>> {
    let mut path = Vec::new();
    for part in text.split('.') {
        let (key, indices) = part.split_once('[').map_or((part, ""), |(k, i)| (k, i));
        let bare = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if key.is_empty() || !key.chars().all(bare) {
            return None;
        }
        path.push(Step::Key(key.to_owned()));
        if !indices.is_empty() {
            for index in indices.strip_suffix(']')?.split("][") {
                path.push(Step::Index(index.parse().ok()?));
            }
        }
    }
    Some(path)
}

/// Whether `path` leads to a value in `value`.
fn lookup(value: &DeValue<'_>, path: &[Step]) -> bool {
    let Some((step, rest)) = path.split_first() else {
        return true;
    };
    match (value, step) {
        (DeValue::Table(table), Step::Key(key)) => table
            .iter()
            .find(|(k, _)| k.get_ref() == key)
            .is_some_and(|(_, v)| lookup(v.get_ref(), rest)),
        (DeValue::Array(items), Step::Index(i)) => {
            items.get(*i).is_some_and(|v| lookup(v.get_ref(), rest))
        }
        _ => false,
    }
}

/// Whether byte `at` lies inside `value`'s keys or elements; if so, the innermost key or
/// element that holds it has been pushed onto `path`.
fn key_at(value: &DeValue<'_>, at: usize, path: &mut Vec<Step>) -> bool {
    match value {
        DeValue::Table(table) => table.iter().any(|(key, value)| {
            path.push(Step::Key(key.get_ref().to_string()));
            let found = key_at(value.get_ref(), at, path)
                || key.span().contains(&at)
                || value.span().contains(&at);
            if !found {
                path.pop();
            }
            found
        }),
        DeValue::Array(items) => items.iter().enumerate().any(|(i, item)| {
            path.push(Step::Index(i));
            let found = key_at(item.get_ref(), at, path) || item.span().contains(&at);
            if !found {
                path.pop();
            }
            found
        }),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_and_render_back() {
        // Written by hand: keys, indices, and messages that are not paths.
        let path = parse_path("view1.crop_scale[1]").unwrap();
        assert_eq!(
            path,
            [
                Step::Key("view1".into()),
                Step::Key("crop_scale".into()),
                Step::Index(1)
            ]
        );
        assert_eq!(render(&path), "view1.crop_scale[1]");
        assert_eq!(render(&parse_path("a[0][2].b").unwrap()), "a[0][2].b");
        for text in ["invalid type", "", "a..b", "a[x]", "a[1", "[1]"] {
            assert_eq!(parse_path(text), None, "{text:?}");
        }
    }

    /// A table read on its own, as `[augment]` is: its errors name their key relative to
    /// the table (`inner.path: message`).
    #[derive(Debug)]
    struct Standalone;

    impl<'de> serde::Deserialize<'de> for Standalone {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            use serde::de::Error as _;
            let table = toml::Table::deserialize(d)?;
            let bad = table.keys().find(|k| k.starts_with("bad")).cloned();
            match bad {
                Some(key) => Err(D::Error::custom(format!("{key}[1]: rejected"))),
                None => Err(D::Error::custom("view1.bad: rejected")),
            }
        }
    }

    #[test]
    fn a_standalone_tables_inner_path_is_joined_to_its_section() {
        let cases = [
            // The inner path exists under the section: joined.
            ("[section]\nbad = [1, 2]\n", "section.bad[1]: rejected"),
            // It starts at a table around the one toml placed the error at: joined there.
            ("[section.view1]\nbad = 1\n", "section.view1.bad: rejected"),
            // Not a key of the text (index 1 of a scalar): the section, and the message
            // whole.
            ("[section]\nbad = 1\n", "section: bad[1]: rejected"),
        ];
        for (text, expected) in cases {
            let e =
                toml::from_str::<std::collections::BTreeMap<String, Standalone>>(text).unwrap_err();
            assert_eq!(describe(&e, text), expected, "{text:?}");
        }
    }
}
