//! The JSON API: `/v1/presign` (one or a batch), `/v1/object` (redirect or
//! proxy delivery) and `/v1/list`.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use serde::Deserialize;

use crate::app::App;
use crate::config::Delivery;
use crate::endpoint::View;
use crate::error::Error;
use crate::listing::{self, ListRequest};
use crate::locator::Locator;
use crate::presign::{self, parse_expires, PresignMethod, PresignOptions};
use crate::response::{self, Body, BoxError};
use crate::{proxy, upstream};

impl App {
    /// `GET /v1/presign?locator=...`
    pub(crate) async fn presign_one(&self, query: &str) -> Result<Response<Body>, Error> {
        let params = Params::parse(
            query,
            &[
                "locator",
                "expires",
                "method",
                "response-content-type",
                "response-content-disposition",
                "version_id",
            ],
        )?;
        let locator = params.locator()?;
        let options = params.presign_options()?;
        let presigned = presign::presign(&self.registry, locator, &options).await?;
        let body = serde_json::to_string(&presigned).map_err(|e| Error::Internal(e.to_string()))?;
        let response = response::json(StatusCode::OK, body);
        Ok(response::served_by(response, &presigned.integration))
    }

    /// `POST /v1/presign` with `{"locators":[...]}`: one result per locator, in order.
    pub(crate) async fn presign_batch<B>(
        &self,
        request: Request<B>,
    ) -> Result<Response<Body>, Error>
    where
        B: hyper::body::Body<Data = Bytes> + Send,
        B::Error: Into<BoxError>,
    {
        let within = Duration::from_secs(self.server.body_timeout_s);
        let body = read_body(request, self.server.max_body_bytes, within).await?;
        let batch: BatchRequest =
            serde_json::from_slice(&body).map_err(|e| Error::MalformedBody(e.to_string()))?;
        if batch.locators.len() > self.server.max_batch {
            return Err(Error::BatchTooLarge {
                count: batch.locators.len(),
                limit: self.server.max_batch,
            });
        }
        let options = batch.options()?;
        let mut results = Vec::with_capacity(batch.locators.len());
        for locator in &batch.locators {
            let item = match presign::presign(&self.registry, locator, &options).await {
                Ok(p) => serde_json::json!({
                    "locator": locator, "url": p.url, "expires_at": p.expires_at, "integration": p.integration,
                }),
                Err(e) => serde_json::json!({ "locator": locator, "error": e.to_json() }),
            };
            results.push(item);
        }
        let body = serde_json::json!({ "results": results }).to_string();
        Ok(response::json(StatusCode::OK, body))
    }

    /// `GET|HEAD /v1/object?locator=...`: 307 to a presigned URL, or the bytes
    /// streamed, as the integration's `delivery` says.
    pub(crate) async fn object<B>(&self, request: &Request<B>) -> Result<Response<Body>, Error> {
        let allowed = [
            "locator",
            "expires",
            "response-content-type",
            "response-content-disposition",
            "version_id",
        ];
        let params = Params::parse(request.uri().query().unwrap_or(""), &allowed)?;
        let resolved = self.registry.resolve_object(params.locator()?)?;
        let mut options = params.presign_options()?;
        let head = request.method() == Method::HEAD;
        match resolved.integration.delivery {
            Delivery::Redirect => {
                options.method = if head {
                    PresignMethod::Head
                } else {
                    PresignMethod::Get
                };
                let credentials = resolved.integration.credentials().await?;
                let presigned =
                    presign::sign(&resolved, &credentials, &options, SystemTime::now())?;
                // Cacheable while the URL stays what it is: the rest of the
                // signing window, or most of the URL's life.
                let expires_in = presigned.expires_in;
                let max_age = presigned
                    .window_left
                    .unwrap_or_else(|| expires_in.saturating_sub((expires_in / 10).min(60)));
                let response = redirect(&presigned.url, max_age.min(expires_in));
                Ok(response::served_by(response, &presigned.integration))
            }
            Delivery::Proxy => {
                let address = resolved.address(View::Dial);
                let query = options.s3_query(&resolved);
                let upstream = upstream::signed_read(
                    &resolved.integration,
                    request.method(),
                    &address,
                    &query,
                    request.headers(),
                )
                .await?;
                let integration = &resolved.integration;
                if upstream.status().as_u16() >= 400 {
                    return Err(integration
                        .upstream
                        .error(&integration.name, upstream)
                        .await);
                }
                let response =
                    proxy::pass_through(upstream, integration.upstream.body_idle_timeout);
                Ok(response::served_by(response, &integration.name))
            }
        }
    }

    /// `GET /v1/list?locator=s3://b/prefix/&delimiter=/&limit=N&cursor=C[&all=true]`
    pub(crate) async fn list(&self, query: &str) -> Result<Response<Body>, Error> {
        let params = Params::parse(query, &["locator", "delimiter", "limit", "cursor", "all"])?;
        let locator = params.locator()?;
        let parsed = Locator::parse(locator).map_err(|reason| Error::InvalidLocator {
            locator: locator.to_owned(),
            reason,
        })?;
        let resolved = self.registry.resolve(&parsed)?;
        let limit = params
            .get("limit")
            .map(|v| match v.parse::<u32>() {
                Ok(n) if (1..=listing::MAX_PAGE).contains(&n) => Ok(n),
                _ => Err(Error::InvalidParameter {
                    name: "limit",
                    reason: format!("must be 1 to {}, got {v:?}", listing::MAX_PAGE),
                }),
            })
            .transpose()?;
        let all = match params.get("all") {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(Error::InvalidParameter {
                    name: "all",
                    reason: format!("must be true or false, got {other:?}"),
                })
            }
        };
        let request = ListRequest {
            delimiter: params.get("delimiter").map(str::to_owned),
            limit,
            cursor: params.get("cursor").map(str::to_owned),
            all,
        };
        let name = resolved.integration.name.clone();
        let response = listing::respond(resolved, request, self.upstream.list_all_max_keys).await?;
        Ok(response::served_by(response, &name))
    }
}

/// A 307 to `url`, privately cacheable for `max_age` seconds.
fn redirect(url: &str, max_age: u64) -> Response<Body> {
    let mut response = Response::new(response::empty());
    *response.status_mut() = StatusCode::TEMPORARY_REDIRECT;
    let headers = response.headers_mut();
    if let Ok(location) = HeaderValue::from_str(url) {
        headers.insert(header::LOCATION, location);
    }
    if let Ok(cache) = HeaderValue::from_str(&format!("private, max-age={max_age}")) {
        headers.insert(header::CACHE_CONTROL, cache);
    }
    response
}

/// Query parameters of a JSON API call: each known name at most once, unknown names refused.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(query: &str, allowed: &[&'static str]) -> Result<Self, Error> {
        let mut params: Vec<(String, String)> = Vec::new();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            let Some(&known) = allowed.iter().find(|a| **a == name) else {
                return Err(Error::InvalidParameter {
                    name: "query",
                    reason: format!(
                        "unknown parameter {name:?}; expected one of {}",
                        allowed.join(", ")
                    ),
                });
            };
            if params.iter().any(|(n, _)| n == known) {
                return Err(Error::InvalidParameter {
                    name: known,
                    reason: "is given more than once".into(),
                });
            }
            params.push((known.to_owned(), value.into_owned()));
        }
        Ok(Self(params))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn locator(&self) -> Result<&str, Error> {
        self.get("locator").ok_or(Error::InvalidParameter {
            name: "locator",
            reason: "is required".into(),
        })
    }

    fn presign_options(&self) -> Result<PresignOptions, Error> {
        Ok(PresignOptions {
            expires_s: self.get("expires").map(parse_expires).transpose()?,
            method: self
                .get("method")
                .map(PresignMethod::parse)
                .transpose()?
                .unwrap_or_default(),
            response_content_type: self.get("response-content-type").map(str::to_owned),
            response_content_disposition: self
                .get("response-content-disposition")
                .map(str::to_owned),
            version_id: self.get("version_id").map(str::to_owned),
        })
    }
}

/// Reads a whole request body, refusing more than `limit` bytes or a body
/// that takes longer than `within` to arrive.
async fn read_body<B>(request: Request<B>, limit: usize, within: Duration) -> Result<Bytes, Error>
where
    B: hyper::body::Body<Data = Bytes> + Send,
    B::Error: Into<BoxError>,
{
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(Error::BodyTooLarge { limit });
    }
    let collect = Limited::new(request.into_body(), limit).collect();
    let Ok(collected) = tokio::time::timeout(within, collect).await else {
        return Err(Error::RequestTimeout {
            seconds: within.as_secs(),
        });
    };
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(Error::BodyTooLarge { limit }),
        Err(e) => Err(Error::MalformedBody(format!("cannot read the body: {e}"))),
    }
}

/// Body of `POST /v1/presign`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    locators: Vec<String>,
    expires: Option<u64>,
    method: Option<String>,
    response_content_type: Option<String>,
    response_content_disposition: Option<String>,
}

impl BatchRequest {
    /// The batch's options, checked once for every item.
    fn options(&self) -> Result<PresignOptions, Error> {
        if let Some(expires) = self.expires {
            presign::check_requested(expires)?;
        }
        Ok(PresignOptions {
            expires_s: self.expires,
            method: self
                .method
                .as_deref()
                .map(PresignMethod::parse)
                .transpose()?
                .unwrap_or_default(),
            response_content_type: self.response_content_type.clone(),
            response_content_disposition: self.response_content_disposition.clone(),
            version_id: None,
        })
    }
}
