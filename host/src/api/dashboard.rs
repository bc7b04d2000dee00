//! `GET /dashboard`: the live dashboard, a static page with its script and style built into
//! the binary (no CDN, no build step: it works offline). The page and its assets need no
//! token; the page asks for one and sends it with every call it makes to `/v1`, keeping it in
//! the browser tab's session storage only. Strict headers: the page loads nothing but its own
//! files and talks to nothing but this server.
//! Calls nothing else in wasp.

use axum::{
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};

const PAGE: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/dashboard.js");
const STYLE: &str = include_str!("dashboard/dashboard.css");

/// Where the page may load from and talk to: this server only; no inline script or style.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            // A new build serves new files under the same names.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
        ],
        body,
    )
        .into_response()
}

/// The dashboard: throughput and backlog, the delivery funnel, regions, plugins, health rules,
/// failures and messages, live. It asks for an API token (scope `admin` shows every panel).
#[utoipa::path(
    get,
    path = "/dashboard",
    tag = "dashboard",
    responses((status = 200, description = "The dashboard page", content_type = "text/html", body = String))
)]
pub async fn page() -> Response {
    asset("text/html; charset=utf-8", PAGE)
}

/// The dashboard's script.
#[utoipa::path(
    get,
    path = "/dashboard/dashboard.js",
    tag = "dashboard",
    responses((status = 200, description = "The dashboard's script", content_type = "text/javascript", body = String))
)]
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// The dashboard's style sheet.
#[utoipa::path(
    get,
    path = "/dashboard/dashboard.css",
    tag = "dashboard",
    responses((status = 200, description = "The dashboard's style sheet", content_type = "text/css", body = String))
)]
pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_files() {
        assert!(PAGE.contains(r#"src="/dashboard/dashboard.js""#));
        assert!(PAGE.contains(r#"href="/dashboard/dashboard.css""#));
        for text in [PAGE, SCRIPT, STYLE] {
            assert!(!text.contains("http://") && !text.contains("https://"), "no remote URL");
        }
        assert!(!PAGE.contains("<script>") && !PAGE.contains("style="), "nothing inline");
    }

    #[test]
    fn the_token_stays_in_the_session() {
        assert!(SCRIPT.contains("sessionStorage"));
        assert!(!SCRIPT.contains("localStorage"));
        assert!(!SCRIPT.contains("EventSource"), "it cannot send the token");
    }

    #[tokio::test]
    async fn assets_answer_with_their_type_and_a_strict_policy() {
        let page = page().await;
        assert_eq!(page.headers()[header::CONTENT_TYPE], "text/html; charset=utf-8");
        assert!(
            page.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("connect-src 'self'")
        );
        assert_eq!(
            script().await.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(style().await.headers()[header::CONTENT_TYPE], "text/css; charset=utf-8");
    }
}
