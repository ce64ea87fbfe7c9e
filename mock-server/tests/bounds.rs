//! The mock's resource bounds (security review, issue 13): the request log and upload decoding.

mod common;

use common::*;
use mock_server::requests_log::{MAX_HEADER, MAX_QUERY};
use mock_server::upload::too_large;
use reqwest::Method;
use serde_json::Value;

/// Peak resident memory of this process, from /proc (Linux); `None` elsewhere.
fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[tokio::test]
async fn a_flood_of_large_unauthenticated_requests_is_logged_in_bounded_form() {
    let s = start(&["dev1"], true).await;
    let header = "d".repeat(200 * 1024);
    let query = format!("phone={}", "1".repeat(60 * 1024));
    for _ in 0..30 {
        let resp = client()
            .get(format!("{}/user/avatar?{query}", s.base_url()))
            .header("X-Device-Id", &header)
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 401);
    }
    let log = control(&s, Method::GET, "/_mock/requests", None).await;
    let entries = log["results"].as_array().expect("entries");
    assert_eq!(entries.len(), 30);
    for e in entries {
        assert_eq!(e["truncated"], Value::Bool(true));
        assert_eq!(e["device_id"].as_str().map(str::len), Some(MAX_HEADER));
        assert_eq!(e["query"].as_str().map(str::len), Some(MAX_QUERY));
        assert_eq!(e["user"], Value::Null);
    }
    s.shutdown().await;
}

#[tokio::test]
async fn an_upload_declaring_huge_dimensions_is_refused_without_allocating() {
    let s = start(&["dev1"], true).await;
    // A real 13000×13000 PNG of about 1 MB: GOWA decodes 169 MB of pixels (the review's 518 KB
    // PNG cost 460 MB); a small one of the same kind shows that the file itself is sound.
    let small = png_bomb(700);
    let decoded = image::load_from_memory(&small).expect("a valid PNG");
    assert_eq!((decoded.width(), decoded.height()), (700, 700));
    drop(decoded);
    let bomb = png_bomb(13_000);
    assert!(bomb.len() < 2_000_000, "{}", bomb.len());
    let before = peak_rss_kb();
    let (status, v) = post_avatar(&s, "dev1", bomb).await;
    assert_eq!(
        (status, str_at(&v, "/code"), str_at(&v, "/message")),
        (500, "INTERNAL_SERVER_ERROR", too_large().as_str())
    );
    if let (Some(before), Some(after)) = (before, peak_rss_kb()) {
        assert!(
            after.saturating_sub(before) < 100 * 1024,
            "peak RSS grew by {} kB",
            after - before
        );
    }
    // A real picture still works, the small bomb included.
    let (status, _) = post_avatar(&s, "dev1", small).await;
    assert_eq!(status, 200);
    // Huge sides are refused from the header alone.
    let (status, v) = post_avatar(&s, "dev1", png_header_only(20_000, 10)).await;
    assert_eq!(
        (status, str_at(&v, "/message")),
        (500, too_large().as_str())
    );
    s.shutdown().await;
}
