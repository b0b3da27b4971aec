//! An error and its causes on one line, as Sluice writes an error into a record or a log: HTTP clients' own
//! errors name only the stage that failed ("client error (Connect)") and keep the reason in their sources.

/// `err` followed by each of its sources, joined by `: `.
pub fn with_causes(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("tcp connect error")]
    struct Connect(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("client error (Connect)")]
    struct Client(#[source] Connect);

    #[test]
    fn each_cause_follows_the_error() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        let err = Client(Connect(refused));
        assert_eq!(super::with_causes(&err), "client error (Connect): tcp connect error: Connection refused");
        assert_eq!(super::with_causes(&std::fmt::Error), std::fmt::Error.to_string(), "no causes, no colon");
    }
}
