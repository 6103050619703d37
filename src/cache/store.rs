//! The storage under the media cache: foyer's hybrid cache, memory in front
//! of an optional disk tier, holding slices and metadata by key.
//!
//! foyer checksums every entry on disk and drops one that does not verify,
//! and recovers the disk tier at start. A disk tier that cannot be opened, or
//! that stops taking writes (read-only, full), leaves the cache in memory
//! only: each is logged and counted, and the disk is probed again.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use foyer::{
    BlockEngineConfig, Code, DeviceBuilder, Event, EventListener, FsDeviceBuilder, HybridCache,
    HybridCacheBuilder, HybridCachePolicy, HybridCacheProperties, Location, PsyncIoEngineConfig,
    RecoverMode,
};

use super::meta::Meta;
use crate::config::CacheConfig;
use crate::metrics::Metrics;

/// Name of the file written to check that the disk tier takes writes.
const PROBE_FILE: &str = ".s3gate-probe";

/// How often the disk tier is probed and the size gauges are updated.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// What is stored under a key.
#[derive(Debug, Clone)]
pub enum Entry {
    /// The bytes of one slice of an object.
    Slice(Bytes),
    /// An object's metadata, held decoded in memory: a hit clones an `Arc`
    /// instead of decoding JSON and parsing headers.
    Meta(Arc<Meta>),
}

impl Entry {
    /// Bytes it occupies in memory, about.
    fn weight(&self) -> usize {
        match self {
            Self::Slice(bytes) => bytes.len(),
            Self::Meta(meta) => meta.weight(),
        }
    }
}

/// Tags of the disk form: one byte, then the length and bytes of the slice
/// or of the JSON metadata. The tags are not 0, so an entry of another
/// layout (whose first byte is part of a length) reads as an error, a miss.
const SLICE_TAG: u8 = b's';
const META_TAG: u8 = b'm';

/// Longest payload read back: a slice is at most 16 MiB; a length beyond
/// this is not ours and is refused before anything is allocated for it.
const MAX_PAYLOAD: usize = 32 << 20;

impl Code for Entry {
    fn encode(&self, writer: &mut impl std::io::Write) -> foyer::Result<()> {
        let (tag, payload) = match self {
            Self::Slice(bytes) => (SLICE_TAG, bytes.clone()),
            Self::Meta(meta) => (META_TAG, meta.encode()),
        };
        tag.encode(writer)?;
        payload.len().encode(writer)?;
        writer.write_all(&payload).map_err(foyer::Error::io_error)
    }

    fn decode(reader: &mut impl std::io::Read) -> foyer::Result<Self> {
        let invalid = |what: &str| {
            let error = std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
            foyer::Error::io_error(error)
        };
        let tag = u8::decode(reader)?;
        if tag != SLICE_TAG && tag != META_TAG {
            return Err(invalid("a cache entry of an unknown kind"));
        }
        let len = usize::decode(reader)?;
        if len > MAX_PAYLOAD {
            return Err(invalid("a cache entry longer than any s3gate writes"));
        }
        let mut payload = vec![0; len];
        reader
            .read_exact(&mut payload)
            .map_err(foyer::Error::io_error)?;
        if tag == SLICE_TAG {
            return Ok(Self::Slice(Bytes::from(payload)));
        }
        Meta::decode(&payload)
            .map(|meta| Self::Meta(Arc::new(meta)))
            .ok_or_else(|| invalid("cached metadata that does not decode"))
    }

    fn estimated_size(&self) -> usize {
        1 + std::mem::size_of::<usize>() + self.weight()
    }
}

/// Slices and metadata by key.
pub struct Store {
    cache: HybridCache<String, Entry>,
    disk: Option<Disk>,
    metrics: Metrics,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("disk", &self.disk)
            .finish_non_exhaustive()
    }
}

/// The disk tier's directory and whether it takes writes.
#[derive(Debug)]
struct Disk {
    path: PathBuf,
    healthy: AtomicBool,
}

/// Counts entries leaving memory.
struct Evictions(Metrics);

impl EventListener for Evictions {
    type Key = String;
    type Value = Entry;

    fn on_leave(&self, reason: Event, _key: &String, _value: &Entry) {
        if matches!(reason, Event::Evict) {
            self.0.cache_evictions.inc();
        }
    }
}

impl Store {
    /// The store `config` describes; a disk tier that cannot be opened is
    /// left out (logged and counted).
    pub async fn open(config: &CacheConfig, metrics: &Metrics) -> Result<Self, String> {
        let memory = usize::try_from(config.memory_mb << 20).unwrap_or(usize::MAX);
        let builder = || {
            HybridCacheBuilder::new()
                .with_name("s3gate")
                .with_policy(HybridCachePolicy::WriteOnInsertion)
                .with_event_listener(Arc::new(Evictions(metrics.clone())))
                .memory(memory)
                .with_weighter(|key: &String, value: &Entry| key.len() + value.weight())
                .storage()
        };
        let mut disk = None;
        if let Some(path) = &config.disk_path {
            match open_disk(path, config).await {
                Ok(device) => disk = Some((path.clone(), device)),
                Err(e) => {
                    metrics.cache_errors.with_label_values(&["disk"]).inc();
                    tracing::error!(
                        path = %path.display(),
                        "cache disk tier unavailable, caching in memory only: {e}"
                    );
                }
            }
        }
        let cache = match &disk {
            Some((_, device)) => {
                let engine =
                    BlockEngineConfig::new(device.clone()).with_block_size(block_size(config));
                builder()
                    .with_io_engine_config(PsyncIoEngineConfig::new())
                    .with_engine_config(engine)
                    .with_recover_mode(RecoverMode::Quiet)
                    .build()
                    .await
            }
            None => builder().build().await,
        }
        .map_err(|e| format!("cannot build the media cache: {e}"))?;
        let disk = disk.map(|(path, _)| Disk {
            path,
            healthy: AtomicBool::new(true),
        });
        Ok(Self {
            cache,
            disk,
            metrics: metrics.clone(),
        })
    }

    /// The entry under `key`; a disk that fails to read counts as a miss.
    pub async fn get(&self, key: &str) -> Option<Entry> {
        match self.cache.get(key).await {
            Ok(entry) => entry.map(|e| e.value().clone()),
            Err(e) => {
                // Dropped, so an entry that does not read (another layout)
                // costs one error, not one per read until it is evicted.
                self.cache.remove(key);
                self.metrics.cache_errors.with_label_values(&["disk"]).inc();
                tracing::warn!("cache read failed, fetching from the store: {e}");
                None
            }
        }
    }

    /// Stores `value` under `key`: in memory, and on disk while it takes writes.
    pub fn insert(&self, key: String, value: Entry) {
        if self
            .disk
            .as_ref()
            .is_some_and(|d| d.healthy.load(Ordering::Relaxed))
        {
            self.cache.insert(key, value);
        } else {
            let in_memory = HybridCacheProperties::default().with_location(Location::InMem);
            self.cache.insert_with_properties(key, value, in_memory);
        }
        let used = self.cache.memory().usage();
        self.metrics
            .cache_memory_bytes
            .set(i64::try_from(used).unwrap_or(i64::MAX));
    }

    /// Drops the entry under `key`.
    pub fn remove(&self, key: &str) {
        self.cache.remove(key);
    }

    /// Writes what is buffered to disk, so the disk tier serves after a restart.
    pub async fn close(&self) {
        if let Err(e) = self.cache.close().await {
            tracing::warn!("closing the media cache: {e}");
        }
    }

    /// Probes the disk tier (it stops or resumes taking writes) and updates
    /// the memory and disk gauges.
    pub async fn check(&self) {
        let used = self.cache.memory().usage();
        self.metrics
            .cache_memory_bytes
            .set(i64::try_from(used).unwrap_or(i64::MAX));
        let Some(disk) = &self.disk else { return };
        let path = disk.path.clone();
        let (probe, allocated) =
            tokio::task::spawn_blocking(move || (probe(&path), allocated(&path)))
                .await
                .unwrap_or_else(|e| (Err(e.to_string()), 0));
        self.metrics
            .cache_disk_bytes
            .set(i64::try_from(allocated).unwrap_or(i64::MAX));
        let was = disk.healthy.swap(probe.is_ok(), Ordering::Relaxed);
        match probe {
            Err(e) => {
                self.metrics.cache_errors.with_label_values(&["disk"]).inc();
                if was {
                    tracing::error!(
                        path = %disk.path.display(),
                        "cache disk tier stopped taking writes, caching in memory only: {e}"
                    );
                }
            }
            Ok(()) if !was => {
                tracing::info!(path = %disk.path.display(), "cache disk tier takes writes again");
            }
            Ok(()) => {}
        }
    }
}

/// Block size of the disk tier: room for several slices per block.
fn block_size(config: &CacheConfig) -> usize {
    let slice = usize::try_from(config.slice_kb << 10).unwrap_or(1 << 20);
    (slice * 4).max(16 << 20)
}

/// The disk tier's device, once its directory takes writes.
async fn open_disk(path: &Path, config: &CacheConfig) -> Result<Arc<dyn foyer::Device>, String> {
    let capacity = usize::try_from(config.disk_mb << 20).map_err(|e| e.to_string())?;
    let dir = path.to_owned();
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create it: {e}"))?;
        probe(&dir)?;
        FsDeviceBuilder::new(&dir)
            .with_capacity(capacity)
            .build()
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Whether `dir` takes a small write, synced.
fn probe(dir: &Path) -> Result<(), String> {
    use std::io::Write;
    let file = dir.join(PROBE_FILE);
    let written = std::fs::File::create(&file).and_then(|mut f| {
        f.write_all(&[0u8; 4096])?;
        f.sync_all()
    });
    let _ = std::fs::remove_file(&file);
    written.map_err(|e| format!("{}: {e}", dir.display()))
}

/// Bytes the disk tier's files occupy on disk (they are sparse until written).
#[cfg(unix)]
fn allocated(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.metadata().ok())
        .map(|meta| meta.blocks() * 512)
        .sum()
}

#[cfg(not(unix))]
fn allocated(_dir: &Path) -> u64 {
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn round_trip(entry: &Entry) -> foyer::Result<Entry> {
        let mut disk = Vec::new();
        entry.encode(&mut disk)?;
        Entry::decode(&mut disk.as_slice())
    }

    #[test]
    fn entries_read_back_from_their_disk_form() {
        let slice = Entry::Slice(Bytes::from_static(b"pixels"));
        assert!(matches!(round_trip(&slice), Ok(Entry::Slice(b)) if b == "pixels"));

        let mut headers = http::HeaderMap::new();
        headers.insert(http::header::ETAG, "\"e1\"".parse().unwrap());
        headers.insert(http::header::CONTENT_TYPE, "image/png".parse().unwrap());
        let meta = Meta::of(&headers, 6, SystemTime::now()).unwrap();
        let Ok(Entry::Meta(back)) = round_trip(&Entry::Meta(Arc::new(meta.clone()))) else {
            panic!("metadata did not read back");
        };
        assert_eq!(*back, meta);
        let mut written = http::HeaderMap::new();
        back.write_headers(&mut written);
        assert_eq!(written, headers, "the parsed headers are rebuilt on decode");
    }

    #[test]
    fn an_entry_of_another_layout_is_an_error_not_an_allocation() {
        // Bytes' own layout (length first) of a 1 MiB slice.
        let mut disk = Vec::new();
        Bytes::from(vec![1u8; 1 << 20]).encode(&mut disk).unwrap();
        assert!(Entry::decode(&mut disk.as_slice()).is_err());
        // Our tag, then a length no entry has.
        let mut disk = vec![SLICE_TAG];
        usize::MAX.encode(&mut disk).unwrap();
        assert!(Entry::decode(&mut disk.as_slice()).is_err());
    }
}
