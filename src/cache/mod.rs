//! The media cache: objects read through the gateway kept in slices, in
//! memory and optionally on local disk, so hot images and video ranges are
//! served without a store request.
//!
//! The cache is consulted only after the request's caller, scope and CORS
//! were decided, and only for plain reads ([`request::Plan`]). An object's
//! metadata (entity tag, size, headers) is kept beside its slices; slices are
//! keyed by integration, address, version and entity tag, so two versions are
//! never stitched into one body. Concurrent cold reads of one slice share
//! one store request ([`flight::Flights`]). After `revalidate_after_s` (or at
//! a client's `Cache-Control: no-cache`) the next read asks the store with
//! `If-None-Match` whether the entity tag still holds.

pub mod body;
pub mod fetch;
pub mod flight;
pub mod meta;
pub mod request;
pub mod store;

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Response, StatusCode};
use tokio::sync::mpsc;

use self::fetch::First;
use self::flight::Flights;
use self::meta::{Identity, Meta};
use self::request::{none_match_hits, Plan, Span};
use self::store::{Entry, Store};
use crate::body::Body;
use crate::config::CacheConfig;
use crate::credentials::{Clock, SystemClock};
use crate::error::Error;
use crate::metrics::Metrics;
use crate::upstream::integration::Read;
use crate::upstream::Resolved;

/// The response header that tells how the cache answered.
pub const STATUS_HEADER: &str = "x-cache-status";

/// [`STATUS_HEADER`], parsed once at compile time.
const STATUS_NAME: HeaderName = HeaderName::from_static(STATUS_HEADER);

/// How the cache answered a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// From the cache, still fresh.
    Hit,
    /// From the store, now cached.
    Miss,
    /// From the cache, after the store confirmed its entity tag.
    Revalidated,
    /// Streamed through from the store, not cached.
    Bypass,
}

impl Status {
    /// As in the header and the metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "HIT",
            Self::Miss => "MISS",
            Self::Revalidated => "REVALIDATED",
            Self::Bypass => "BYPASS",
        }
    }

    /// The status a response's `x-cache-status` header names, if any.
    pub fn of(headers: &http::HeaderMap) -> Option<Self> {
        let value = headers.get(STATUS_NAME)?.as_bytes();
        [Self::Hit, Self::Miss, Self::Revalidated, Self::Bypass]
            .into_iter()
            .find(|status| status.as_str().as_bytes() == value)
    }

    /// As the metric label.
    fn label(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Revalidated => "revalidated",
            Self::Bypass => "bypass",
        }
    }
}

/// What a lookup found for a cacheable read.
#[derive(Debug, Clone)]
struct Found {
    meta: Arc<Meta>,
    status: Status,
    /// A slice the lookup read from the store, to serve first.
    first: Option<(u64, Bytes)>,
}

/// The outcome of a shared lookup: `None` streams the read through.
type Lookup = Result<Option<Found>, Error>;

/// The media cache.
pub struct MediaCache {
    store: Store,
    config: CacheConfig,
    slice: u64,
    max_object: u64,
    revalidate_after: Duration,
    lookups: Arc<Flights<Lookup>>,
    slices: Arc<Flights<Result<Bytes, Error>>>,
    metrics: Metrics,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for MediaCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaCache")
            .field("config", &self.config)
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl MediaCache {
    /// The cache `config` describes, with its background disk check.
    pub async fn open(config: &CacheConfig, metrics: &Metrics) -> Result<Arc<Self>, String> {
        let cache = Arc::new(Self {
            store: Store::open(config, metrics).await?,
            config: config.clone(),
            slice: config.slice_kb << 10,
            max_object: config.max_object_mb << 20,
            revalidate_after: Duration::from_secs(config.revalidate_after_s),
            lookups: Arc::default(),
            slices: Arc::default(),
            metrics: metrics.clone(),
            clock: Arc::new(SystemClock),
        });
        tokio::spawn(check_every(Arc::downgrade(&cache), store::CHECK_INTERVAL));
        Ok(cache)
    }

    /// The configuration it was opened with (a reload keeps the cache only
    /// while this is unchanged).
    pub fn config(&self) -> &CacheConfig {
        &self.config
    }

    /// Writes what is buffered to disk; at shutdown.
    pub async fn close(&self) {
        self.store.close().await;
    }

    /// Answers `read` of `resolved` (an object the caller may read): from the
    /// cache when the integration and the read allow it, else from the store.
    pub async fn serve(
        self: &Arc<Self>,
        resolved: &Resolved,
        read: Read<'_>,
    ) -> Result<Response<Body>, Error> {
        let integration = &resolved.integration;
        let plan = match Plan::of(&read) {
            Some(plan) if integration.cache => plan,
            _ => return self.bypass(read, resolved).await,
        };
        let identity = Identity::new(
            integration.clone(),
            read.address.clone(),
            plan.version_id.clone(),
        );
        match self.lookup(&identity, &plan).await? {
            Some(found) => self.answer(identity, &plan, found).await,
            None => self.bypass(read, resolved).await,
        }
    }

    /// The store's own answer, marked as not cached.
    async fn bypass(&self, read: Read<'_>, resolved: &Resolved) -> Result<Response<Body>, Error> {
        let mut response = resolved.integration.fetch(read).await?;
        self.count(&resolved.integration.name, Status::Bypass);
        mark(&mut response, Status::Bypass);
        Ok(response)
    }

    /// The object's metadata: cached and fresh, or confirmed or read by one
    /// store request shared by every concurrent reader.
    async fn lookup(self: &Arc<Self>, identity: &Identity, plan: &Plan) -> Lookup {
        let key = identity.meta_key();
        let cached = self.meta(key).await;
        if let Some(meta) = &cached {
            let after = identity
                .integration
                .cache_revalidate_after
                .unwrap_or(self.revalidate_after);
            let fresh = identity.version_id.is_some() || meta.is_fresh(self.clock.now(), after);
            if fresh && !plan.no_cache {
                return Ok((!meta.bypass).then(|| Found {
                    meta: meta.clone(),
                    status: Status::Hit,
                    first: None,
                }));
            }
        }
        if plan.head && cached.is_none() {
            return Ok(None);
        }
        let index = plan.first_slice(self.slice);
        let previous = cached.filter(|m| !m.bypass);
        let (cache, id) = (self.clone(), identity.clone());
        let work = async move { cache.first(&id, index, previous).await };
        let shared = self.lookups.run(key.to_owned(), work).await;
        shared.unwrap_or_else(|| Err(Error::Internal("a cache lookup ended early".into())))
    }

    /// Reads (or revalidates) the object for [`lookup`](Self::lookup) and keeps what it learnt.
    async fn first(&self, identity: &Identity, index: u64, previous: Option<Arc<Meta>>) -> Lookup {
        let key = identity.meta_key().to_owned();
        let now = self.clock.now();
        let found = fetch::first(
            identity,
            index,
            self.slice,
            self.max_object,
            previous.as_deref(),
            now,
        )
        .await;
        match found {
            Ok(First::NotModified) => {
                let Some(previous) = previous else {
                    return Err(Error::Internal("304 to an unconditional read".into()));
                };
                let meta = Arc::new(previous.confirmed(now));
                self.store.insert(key, Entry::Meta(meta.clone()));
                Ok(Some(Found {
                    meta,
                    status: Status::Revalidated,
                    first: None,
                }))
            }
            Ok(First::Slice { meta, index, bytes }) => {
                // A store that ignores If-None-Match confirms by sending the same tag.
                let same = previous.is_some_and(|p| p.etag == meta.etag);
                let status = if same {
                    Status::Revalidated
                } else {
                    Status::Miss
                };
                let slice = Entry::Slice(bytes.clone());
                self.store
                    .insert(identity.slice_key(&meta.etag, index), slice);
                let meta = Arc::new(meta);
                self.store.insert(key, Entry::Meta(meta.clone()));
                Ok(Some(Found {
                    meta,
                    status,
                    first: Some((index, bytes)),
                }))
            }
            Ok(First::Bypass(marker)) => {
                self.store.insert(key, Entry::Meta(Arc::new(marker)));
                Ok(None)
            }
            Ok(First::Beyond) => Ok(None),
            Err(e) => {
                if e.status() == StatusCode::NOT_FOUND {
                    self.store.remove(&key);
                }
                Err(e)
            }
        }
    }

    /// The cached metadata under `key`.
    async fn meta(&self, key: &str) -> Option<Arc<Meta>> {
        match self.store.get(key).await? {
            Entry::Meta(meta) => Some(meta),
            Entry::Slice(_) => None,
        }
    }

    /// The response to `plan` from `found`: `304`, headers only, or the bytes.
    async fn answer(
        self: &Arc<Self>,
        identity: Identity,
        plan: &Plan,
        found: Found,
    ) -> Result<Response<Body>, Error> {
        let integration = identity.integration.name.clone();
        self.count(&integration, found.status);
        let meta = found.meta.clone();
        let mut response = Response::new(crate::body::empty());
        meta.write_headers(response.headers_mut());
        mark(&mut response, found.status);
        if plan
            .if_none_match
            .as_deref()
            .is_some_and(|tags| none_match_hits(tags, &meta.etag))
        {
            *response.status_mut() = StatusCode::NOT_MODIFIED;
            return Ok(response);
        }
        let span = Span::of(plan.range, meta.size, &integration)?;
        let headers = response.headers_mut();
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(span.len()));
        if span.partial {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            if let Ok(range) = HeaderValue::from_str(&span.content_range()) {
                response.headers_mut().insert(header::CONTENT_RANGE, range);
            }
        }
        if !plan.head {
            *response.body_mut() = match self.whole(&identity, &found, span).await {
                Some(bytes) => {
                    response.extensions_mut().insert(crate::body::InMemory);
                    crate::body::full(bytes)
                }
                None => self.body(identity, found, span),
            };
        }
        Ok(response)
    }

    /// The bytes of `span` when one slice at hand holds them all (a cached
    /// image): answered whole, without the task and channel of
    /// [`body`](Self::body) (a spawned task per response).
    async fn whole(&self, identity: &Identity, found: &Found, span: Span) -> Option<Bytes> {
        let slices = span.slices(self.slice);
        if slices.end != slices.start + 1 {
            return None;
        }
        let index = slices.start;
        let (bytes, cached) = match &found.first {
            Some((i, bytes)) if *i == index => (bytes.clone(), false),
            Some(_) => return None,
            None => {
                let key = identity.slice_key(&found.meta.etag, index);
                let len = found.meta.slice_len(index, self.slice);
                (self.slice_from_cache(&key, len).await?, true)
            }
        };
        let part = span.cut(index, self.slice, &bytes);
        self.count_bytes(identity, cached, part.len());
        Some(part)
    }

    /// The bytes of `span`, slice by slice, from the cache or the store.
    fn body(self: &Arc<Self>, identity: Identity, found: Found, span: Span) -> Body {
        use http_body_util::BodyExt;
        let (sender, receiver) = mpsc::channel(body::DEPTH);
        let cache = self.clone();
        tokio::spawn(async move {
            let mut first = found.first;
            for index in span.slices(cache.slice) {
                let slice = match first.take_if(|(i, _)| *i == index) {
                    Some((_, bytes)) => Ok((bytes, false)),
                    None => cache.slice(&identity, &found.meta, index).await,
                };
                let part = match slice {
                    Ok((bytes, cached)) => {
                        let part = span.cut(index, cache.slice, &bytes);
                        cache.count_bytes(&identity, cached, part.len());
                        Ok(part)
                    }
                    Err(e) => {
                        tracing::warn!(integration = %identity.integration.name, "cached response cut off: {e}");
                        Err(e.into())
                    }
                };
                let failed = part.is_err();
                if sender.send(part).await.is_err() || failed {
                    return;
                }
            }
        });
        body::SliceBody::new(receiver, span.len()).boxed()
    }

    /// Slice `index` of the version `meta` describes, and whether it came
    /// from the cache. An object that changed on the store loses its
    /// metadata, so the next read starts over.
    async fn slice(
        self: &Arc<Self>,
        identity: &Identity,
        meta: &Arc<Meta>,
        index: u64,
    ) -> Result<(Bytes, bool), Error> {
        let key = identity.slice_key(&meta.etag, index);
        let len = meta.slice_len(index, self.slice);
        if let Some(bytes) = self.slice_from_cache(&key, len).await {
            return Ok((bytes, true));
        }
        let flight_key = key.clone();
        let (cache, id, meta) = (self.clone(), identity.clone(), meta.clone());
        let work = async move {
            // A flight just before this one may have stored it.
            if let Some(bytes) = cache.slice_from_cache(&key, len).await {
                return Ok(bytes);
            }
            match fetch::slice(&id, &meta, index, cache.slice).await {
                Ok(bytes) => {
                    cache.store.insert(key, Entry::Slice(bytes.clone()));
                    Ok(bytes)
                }
                Err(e) => {
                    cache.store.remove(id.meta_key());
                    Err(e)
                }
            }
        };
        let fetched = self.slices.run(flight_key, work).await;
        let bytes =
            fetched.unwrap_or_else(|| Err(Error::Internal("a slice fetch ended early".into())))?;
        Ok((bytes, false))
    }

    /// The cached slice under `key`, if it has the length it must have.
    async fn slice_from_cache(&self, key: &str, len: u64) -> Option<Bytes> {
        if let Entry::Slice(bytes) = self.store.get(key).await? {
            if bytes.len() as u64 == len {
                return Some(bytes);
            }
        }
        self.store.remove(key);
        None
    }

    fn count(&self, integration: &str, status: Status) {
        let labels = [integration, status.label()];
        self.metrics.cache_requests.with_label_values(&labels).inc();
    }

    fn count_bytes(&self, identity: &Identity, cached: bool, len: usize) {
        let source = if cached { "cache" } else { "store" };
        let labels = [identity.integration.name.as_str(), source];
        self.metrics
            .cache_bytes
            .with_label_values(&labels)
            .inc_by(len as u64);
    }
}

/// Sets the cache status header.
fn mark(response: &mut Response<Body>, status: Status) {
    response
        .headers_mut()
        .insert(STATUS_NAME, HeaderValue::from_static(status.as_str()));
}

/// Probes the disk and updates the gauges every `interval`, while the cache lives.
async fn check_every(cache: Weak<MediaCache>, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    loop {
        ticks.tick().await;
        let Some(cache) = cache.upgrade() else { return };
        cache.store.check().await;
    }
}
