//! The syntax of an endpoint's route, `"POST /orders/{key}"`, checked at
//! compile time so that a typo fails on the attribute's own literal. The
//! runtime reads routes from `spine.toml` too and checks them again with the
//! same rules (`spine-core/src/http/api/endpoint.rs`); a proc-macro crate
//! cannot share that code without depending on the runtime.

/// The methods an endpoint may use: each takes a request body, the payload.
pub(crate) const METHODS: &[&str] = &["POST", "PUT", "PATCH"];

/// `Ok` for a valid route, or what is wrong and how to write it.
pub(crate) fn check(route: &str) -> Result<(), String> {
    let Some((method, path)) = route.trim().split_once(' ') else {
        return Err(format!(
            "`{route}` is not a route: write the method and the path, e.g. `\"POST /orders\"`"
        ));
    };
    if !METHODS.contains(&method) {
        return Err(format!(
            "`{method}` cannot carry a payload: an endpoint's method is one of {}",
            METHODS.join(", ")
        ));
    }
    let path = path.trim();
    if !path.starts_with('/') {
        return Err(format!(
            "the path `{path}` must start with `/`, e.g. `/orders`"
        ));
    }
    let mut params = 0;
    for segment in path.split('/').skip(1) {
        if let Some(inner) = segment.strip_prefix('{') {
            let Some(name) = inner.strip_suffix('}') else {
                return Err(format!("`{segment}` is not a parameter: write `{{key}}`"));
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!(
                    "`{segment}` is not a parameter: name it with letters, digits and `_`, e.g. `{{key}}`"
                ));
            }
            params += 1;
        } else if segment.contains(['{', '}', ' ', '?', '#']) {
            return Err(format!(
                "the path segment `{segment}` has a character a route cannot use"
            ));
        }
    }
    if params > 1 {
        return Err(
            "a route takes at most one parameter, which becomes the message key: `/orders/{key}`"
                .to_owned(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn routes_are_checked() {
        assert!(check("POST /orders").is_ok());
        assert!(check("PUT /orders/{key}").is_ok());
        assert!(check("GET /orders")
            .unwrap_err()
            .contains("POST, PUT, PATCH"));
        assert!(check("/orders")
            .unwrap_err()
            .contains("method and the path"));
        assert!(check("POST orders").unwrap_err().contains("start with `/`"));
        assert!(check("POST /a/{x}/{y}")
            .unwrap_err()
            .contains("at most one"));
        assert!(check("POST /a/{x").unwrap_err().contains("not a parameter"));
    }
}
