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
