//! The HTTP surface: routes, and the middleware every request passes through (per-address rate
//! limit, time limit, metrics and one log line without secrets).

mod account;
mod direct;
pub mod extract;
pub mod login;
mod object_common;
mod objects;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use backup_api::ErrorCode;

pub use direct::sweep_direct_uploads;
pub use objects::{deleted_objects, purge_deleted, sweep_staging};

use crate::error::ApiError;
use crate::state::AppState;

/// The full router for one server process.
pub fn router(state: Arc<AppState>) -> Router {
    // Full paths rather than a nested router: nesting strips the prefix from every request's URI.
    let v1 = |path: &str| format!("{}{path}", backup_api::API_PREFIX);
    Router::new()
        .route(&v1("/register/start"), post(login::register_start))
        .route(&v1("/register/finish"), post(login::register_finish))
        .route(&v1("/login/start"), post(login::login_start))
        .route(&v1("/login/finish"), post(login::login_finish))
        .route(&v1("/account"), get(account::status))
        .route(&v1("/events"), get(account::events))
        .route(&v1("/devices"), post(account::enrol_device).get(account::list_devices))
        .route(&v1("/devices/{id}"), axum::routing::delete(account::revoke_device))
        .route(&v1("/escrow"), get(account::get_escrow).put(account::put_escrow))
        .route(&v1("/head"), get(account::get_head).put(account::put_head))
        .route(&v1("/objects"), get(objects::list_objects))
        .route(&v1("/deleted"), get(objects::list_deleted))
        .route(&v1("/deleted/{id}"), post(objects::restore_deleted))
        .route(&v1("/objects/{id}/upload-url"), post(direct::upload_url))
        .route(&v1("/objects/{id}/upload-done"), post(direct::upload_done))
        .route(&v1("/objects/{id}/download-url"), get(direct::download_url))
        .route(
            &v1("/objects/{id}"),
            put(objects::put_object).get(objects::get_object).head(objects::head_object).delete(objects::delete_object),
        )
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .fallback(unknown_route)
        .method_not_allowed_fallback(unknown_route)
        // Bodies are bounded by each handler (JSON, records) or by Content-Length (objects).
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let mut response = state.metrics.render().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}

async fn unknown_route() -> ApiError {
    ApiError::new(ErrorCode::UnknownRoute, "no such route or method")
}

/// Rate limit by address, bound the time, count and log. Logs carry the route pattern (never the
/// raw path), method, status and latency; handlers log account hashes only.
async fn guard(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", MatchedPath::as_str);
    // A fixed set of labels: the method string is client-chosen and unbounded.
    let method = match *request.method() {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        _ => "OTHER",
    };
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| crate::ratelimit::client_key(c.0.ip()));
    let response = match peer.map(|ip| state.ip_limiter.check(&ip)) {
        Some(Err(wait)) => ApiError::rate_limited(wait).into_response(),
        _ => {
            let limit = if route == "/v1/objects/{id}" || route.starts_with("/v1/deleted/") {
                state.limits.transfer_timeout
            } else {
                state.limits.request_timeout
            };
            match tokio::time::timeout(limit, next.run(request)).await {
                Ok(response) => response,
                Err(_) => ApiError::new(ErrorCode::Timeout, "the request took too long").into_response(),
            }
        }
    };
    let status = response.status();
    state.metrics.observe(route, method, status.as_u16(), started.elapsed());
    if status == StatusCode::INTERNAL_SERVER_ERROR || status == StatusCode::SERVICE_UNAVAILABLE {
        tracing::warn!(%route, %method, status = status.as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "request failed");
    } else {
        tracing::debug!(%route, %method, status = status.as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "request");
    }
    response
}
