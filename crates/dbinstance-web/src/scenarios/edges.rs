//! The HTTP edges of a service: every error answer in the one JSON shape, on every
//! route; the body limit; a slow client that must not hold the writer.

use super::expect_error;
use crate::RejectionKind;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A route of the service under test, as the edge scenarios need to know it.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// The path, with `{id}` where an integer parameter goes (`/users/{id}/posts`).
    pub path: &'static str,
    /// The methods it serves.
    pub methods: &'static [&'static str],
    /// The method that reads a JSON body, if one does.
    pub json: Option<JsonBody>,
    /// True when its GET takes `?limit=&offset=`.
    pub paged: bool,
}

/// The JSON body a route reads.
#[derive(Debug, Clone, Copy)]
pub struct JsonBody {
    /// The method that reads it.
    pub method: &'static str,
    /// A valid body, given the resource `{id}` exists.
    pub valid: fn() -> Value,
    /// The names of its text fields.
    pub text_fields: &'static [&'static str],
}

impl Route {
    fn at(&self, id: &str) -> String {
        self.path.replace("{id}", id)
    }
}

fn method(name: &str) -> Method {
    Method::from_bytes(name.as_bytes()).expect("a method name")
}

/// Every error the frameworks answer by themselves, on every route of `routes`, is
/// a JSON body of the one shape with the kind its status says; text the database
/// cannot store is a 422 naming the field. `id` is the id of an existing resource
/// for the routes with `{id}`.
///
/// # Panics
/// When an answer is not so.
pub async fn every_error_is_json(base: &str, routes: &[Route], id: i64) {
    let http = reqwest::Client::new();
    let id = id.to_string();
    let response = http
        .get(format!("{base}/no/such/route"))
        .send()
        .await
        .unwrap();
    expect_error(response, StatusCode::NOT_FOUND, RejectionKind::NotFound).await;

    for route in routes {
        let url = format!("{base}{}", route.at(&id));
        let unserved = ["PUT", "DELETE", "PATCH", "POST", "GET"]
            .into_iter()
            .find(|m| !route.methods.contains(m))
            .expect("a method the route does not serve");
        let response = http.request(method(unserved), &url).send().await.unwrap();
        expect_error(
            response,
            StatusCode::METHOD_NOT_ALLOWED,
            RejectionKind::MethodNotAllowed,
        )
        .await;

        if route.path.contains("{id}") {
            for m in route.methods {
                let mut request = http.request(method(m), format!("{base}{}", route.at("abc")));
                if let Some(json) = route.json.filter(|json| json.method == *m) {
                    request = request.json(&(json.valid)());
                }
                let response = request.send().await.unwrap();
                expect_error(response, StatusCode::BAD_REQUEST, RejectionKind::BadRequest).await;
            }
        }

        if route.paged {
            for query in ["limit=abc", "offset=1.5"] {
                let response = http.get(format!("{url}?{query}")).send().await.unwrap();
                expect_error(response, StatusCode::BAD_REQUEST, RejectionKind::BadRequest).await;
            }
        }

        let Some(JsonBody {
            method: json_method,
            valid: body,
            text_fields,
        }) = route.json
        else {
            continue;
        };
        let request = || http.request(method(json_method), &url);
        let malformed = request()
            .header("content-type", "application/json")
            .body("{\"name\": ")
            .send()
            .await
            .unwrap();
        expect_error(
            malformed,
            StatusCode::BAD_REQUEST,
            RejectionKind::BadRequest,
        )
        .await;
        let valid = serde_json::to_vec(&body()).unwrap();
        let untyped = request().body(valid.clone()).send().await.unwrap();
        expect_error(
            untyped,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RejectionKind::UnsupportedMediaType,
        )
        .await;
        let text = request()
            .header("content-type", "text/plain")
            .body(valid)
            .send()
            .await
            .unwrap();
        expect_error(
            text,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RejectionKind::UnsupportedMediaType,
        )
        .await;
        let wrong_shape = request().json(&[1, 2]).send().await.unwrap();
        expect_error(
            wrong_shape,
            StatusCode::UNPROCESSABLE_ENTITY,
            RejectionKind::Invalid,
        )
        .await;
        for field in text_fields {
            let mut nul = body();
            nul[*field] = Value::from("before\0after");
            let response = request().json(&nul).send().await.unwrap();
            let error = expect_error(
                response,
                StatusCode::UNPROCESSABLE_ENTITY,
                RejectionKind::Invalid,
            )
            .await;
            assert!(
                error.message.contains(field),
                "{json_method} {url}: the message names `{field}`: {}",
                error.message
            );
        }
    }
}

/// A body of `limit + 1` bytes sent to `path` (a JSON route) is a 413 with the JSON
/// body, declared or not; one of `limit` bytes is not refused for its size.
///
/// # Panics
/// When the service answers otherwise.
pub async fn a_body_over_the_limit_is_a_413(base: &str, path: &str, limit: usize) {
    let http = reqwest::Client::new();
    // A JSON string of exactly `len` bytes.
    let body = |len: usize| format!("\"{}\"", "x".repeat(len - 2));
    let response = http
        .post(format!("{base}{path}"))
        .header("content-type", "application/json")
        .body(body(limit + 1))
        .send()
        .await
        .unwrap();
    expect_error(
        response,
        StatusCode::PAYLOAD_TOO_LARGE,
        RejectionKind::PayloadTooLarge,
    )
    .await;
    let response = http
        .post(format!("{base}{path}"))
        .header("content-type", "application/json")
        .body(body(limit))
        .send()
        .await
        .unwrap();
    assert_ne!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

/// How long the slow client and the writes beside it took.
#[derive(Debug)]
pub struct SlowBodyReport {
    /// From the slow request's first byte to its answer.
    pub slow: Duration,
    /// The slowest of the other writes.
    pub others_max: Duration,
    /// How many other writes went through while the slow body was being sent.
    pub others: usize,
}

/// A client sends `slow_body` to `POST path` one byte at a time over about two
/// seconds (on a raw TCP connection); meanwhile `fast` writes go through, each well
/// under that time. On a pool of one connection this holds only when no session is
/// opened before the body is whole. Both the slow request and the others must
/// succeed (2xx).
///
/// # Panics
/// When a write waits for the slow client, or a request fails.
pub async fn a_slow_body_holds_no_writer(
    base: &str,
    path: &str,
    slow_body: Value,
    fast: impl Fn(&reqwest::Client, usize) -> reqwest::RequestBuilder,
) -> SlowBodyReport {
    let addr = base.trim_start_matches("http://").to_owned();
    let body = serde_json::to_vec(&slow_body).unwrap();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let started = Instant::now();
    stream.write_all(head.as_bytes()).await.unwrap();
    let pause = Duration::from_millis(2000 / body.len() as u64);
    let slow = tokio::spawn(async move {
        for byte in body {
            stream.write_all(&[byte]).await.unwrap();
            stream.flush().await.unwrap();
            tokio::time::sleep(pause).await;
        }
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.unwrap();
        (
            started.elapsed(),
            String::from_utf8_lossy(&answer).into_owned(),
        )
    });

    // The slow request has reached the handler's routing by now.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let http = reqwest::Client::new();
    let mut others_max = Duration::ZERO;
    let mut others = 0;
    while !slow.is_finished() && started.elapsed() < Duration::from_millis(1500) {
        let sent = Instant::now();
        let response = fast(&http, others).send().await.unwrap();
        let took = sent.elapsed();
        let status = response.status();
        assert!(
            status.is_success(),
            "a write beside the slow client: {status}: {}",
            response.text().await.unwrap_or_default()
        );
        others_max = others_max.max(took);
        others += 1;
    }
    let (slow, answer) = slow.await.unwrap();
    let report = SlowBodyReport {
        slow,
        others_max,
        others,
    };
    assert!(
        answer.starts_with("HTTP/1.1 2"),
        "the slow request failed: {answer}"
    );
    assert!(report.others > 0, "{report:?}");
    assert!(
        report.others_max < Duration::from_millis(500),
        "a write waited for the slow client: {report:?}"
    );
    report
}
