//! What a request declares about its body, read the same way by every server that takes one.

/// The `Content-Length` a request declares, when it declares a readable one.
pub fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers.get(http::header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// Whether the request declares a body longer than `limit`: refused before any of it is read, so the sender
/// gets its 413 rather than a connection closed under it mid-write.
pub fn declares_more_than(headers: &http::HeaderMap, limit: usize) -> bool {
    declared_length(headers).is_some_and(|length| length > limit as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_lengths() {
        let mut headers = http::HeaderMap::new();
        assert!(!declares_more_than(&headers, 0), "no declaration, nothing to refuse up front");
        headers.insert(http::header::CONTENT_LENGTH, "11".parse().unwrap());
        assert!(declares_more_than(&headers, 10) && !declares_more_than(&headers, 11));
        headers.insert(http::header::CONTENT_LENGTH, "-1".parse().unwrap());
        assert_eq!(declared_length(&headers), None);
        headers.insert(http::header::CONTENT_LENGTH, "99999999999999999999999".parse().unwrap());
        assert_eq!(declared_length(&headers), None, "past u64 is unreadable, not a panic");
    }
}
