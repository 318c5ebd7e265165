//! `${VAR}` in the file's strings, replaced with environment variables.

/// Why a string's `${…}` could not be expanded.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum InterpolationError {
    /// `${NAME}` names a variable that is not set.
    Unset(String),
    /// A `${` that is not a reference; the text says why.
    Malformed(String),
}

/// Replaces each `${NAME}` with the variable's value (set but empty is fine); `$${` stands for
/// a literal `${`, and any other `$` is kept as is.
pub(super) fn interpolate(
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, InterpolationError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let Some(end) = tail.find('}') else {
                return Err(InterpolationError::Malformed(
                    "`${` without a closing `}` (write `$${` for a literal `${`)".to_string(),
                ));
            };
            let name = &tail[..end];
            let valid = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(InterpolationError::Malformed(format!(
                    "`${{{name}}}` is not a variable reference (expected ${{NAME}} with letters, \
                     digits and _; write `$${{` for a literal `${{`)"
                )));
            }
            let value = env(name).ok_or_else(|| InterpolationError::Unset(name.to_string()))?;
            out.push_str(&value);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}
