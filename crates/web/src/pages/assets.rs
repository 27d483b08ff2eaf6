//! The stylesheet (served from our own origin so the CSP needs no `unsafe-inline`).

use axum::response::IntoResponse;
use http::header;

pub const STYLESHEET: &str = "\
body{font-family:system-ui,sans-serif;max-width:46rem;margin:0 auto;padding:1rem;color:#1b1b1b;line-height:1.45}
header{border-bottom:1px solid #ddd;margin-bottom:1rem;padding-bottom:.5rem}
.brand{font-weight:700;text-decoration:none;color:#234}
input[type=text],input[type=email],input[type=password]{width:100%;max-width:24rem;padding:.45rem;font-size:1rem}
button{padding:.45rem 1rem;font-size:1rem}
.error{color:#a00;font-weight:600}.notice{color:#060}
.secret{font-size:1.25rem;letter-spacing:.08em}
section{border-top:1px solid #eee;margin-top:1.25rem}
table{border-collapse:collapse}td,th{padding:.25rem .5rem;text-align:left;border-bottom:1px solid #eee}
.chooser{list-style:none;padding:0}.chooser li{margin:.5rem 0}.chooser span{color:#555}
.qr svg{width:12rem;height:12rem}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f6f6;padding:.5rem}
.compact{font-size:.95rem}.compact h1{font-size:1.2rem}.compact button{width:100%;margin:.25rem 0}
";

pub(crate) async fn stylesheet_get() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
}
