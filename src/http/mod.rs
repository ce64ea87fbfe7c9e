//! What every HTTP client of the worker shares: bodies read only up to a limit, since a gateway, a CDN or
//! an image host can answer with anything; URLs nobody we trust wrote fetched only through [`guarded`],
//! behind the address guard of [`guard`].

pub mod guard;
pub mod guarded;

/// A body larger than the limit.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the answer is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error(transparent)]
    Transport(#[from] reqwest::Error),
}

/// Reads `response`'s body, refusing it as soon as it exceeds `limit` bytes (announced or streamed).
pub async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, BodyError> {
    if response
        .content_length()
        .is_some_and(|length| length > limit as u64)
    {
        return Err(BodyError::TooLarge { limit });
    }
    let capacity = response.content_length().unwrap_or(16 * 1024) as usize;
    let mut body = Vec::with_capacity(capacity.min(limit));
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `url` without credentials, query or fragment: what messages may show of a URL, since a query may hold
/// a signature (`X-Amz-Signature`, WhatsApp's `oh=`) or a phone number, and the userinfo a password.
pub fn redact_url(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

/// A reqwest error as text for a result or a log: its URL shown by [`redact_url`], and the innermost cause
/// ("Connection refused") appended, which reqwest's own text leaves out.
pub fn error_text(err: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = err.to_string();
    if let Some(url) = err.url() {
        text = text.replace(url.as_str(), &redact_url(url));
    }
    let mut cause = err.source();
    let mut innermost = None;
    while let Some(found) = cause {
        innermost = Some(found);
        cause = found.source();
    }
    if let Some(innermost) = innermost {
        text.push_str(": ");
        text.push_str(&innermost.to_string());
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn errors_show_no_query_fragment_or_credentials() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let url = format!(
            "http://bob:hunter2@127.0.0.1:{port}/bucket/a.jpg?X-Amz-Signature=deadbeef&phone=6281234#frag"
        );
        let err = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(&url)
            .send()
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("deadbeef"),
            "reqwest's own text holds the query"
        );
        let text = error_text(&err);
        for secret in ["deadbeef", "X-Amz", "6281234", "hunter2", "bob", "frag"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(
            text.contains(&format!("127.0.0.1:{port}/bucket/a.jpg")),
            "{text}"
        );
    }
}
