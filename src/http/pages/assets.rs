//! The pages' own stylesheet and script, under names that carry a hash of their content, so
//! they are cached for a year and a new version is a new name.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// A built-in asset.
pub struct Asset {
    stem: &'static str,
    extension: &'static str,
    content_type: &'static str,
    body: &'static str,
}

impl Asset {
    const fn new(
        stem: &'static str,
        extension: &'static str,
        content_type: &'static str,
        body: &'static str,
    ) -> Self {
        Self { stem, extension, content_type, body }
    }

    /// `stem-<first 16 hex digits of the SHA-256 of the content>.extension`.
    pub fn name(&self) -> String {
        let digest = Sha256::digest(self.body.as_bytes());
        let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!("{}-{hex}.{}", self.stem, self.extension)
    }
}

pub static STYLESHEET: Asset = Asset::new(
    "portcullis",
    "css",
    "text/css; charset=utf-8",
    include_str!("../../../assets/portcullis.css"),
);
pub static FORM_POST: Asset = Asset::new(
    "form-post",
    "js",
    "text/javascript; charset=utf-8",
    include_str!("../../../assets/form-post.js"),
);

/// GET /assets/{name}: an asset by its versioned name.
pub async fn asset(Path(name): Path<String>) -> Response {
    for asset in [&STYLESHEET, &FORM_POST] {
        if asset.name() == name {
            let mut response = asset.body.into_response();
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
            headers.insert(
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            );
            return response;
        }
    }
    StatusCode::NOT_FOUND.into_response()
}
