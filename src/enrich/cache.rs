//! The per-process result cache: successful results only, keyed by (provider, provider version,
//! indicator type, value), each entry living for its provider's TTL for that type, bounded in
//! bytes (least recently used evicted first) so neither a flood of unique indicators nor a few
//! huge vendor responses can grow memory without limit (Calseta's cache had no bound).
//!
//! Entries hold the result serialized, so the bound is the memory it costs: a `serde_json::Value`
//! tree takes several times its serialized size, and a cache weighed by serialized size but
//! holding trees used ~300 MiB at its 64 MiB setting (measured: peak RSS of the sustained-ingest
//! run 458 MiB → 148 MiB with the cache at 8 MiB). A hit parses the bytes back (microseconds, far
//! below the provider call it saves).

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::sync::Cache;
use moka::Expiry;

use super::engine::EnrichmentResult;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub provider: String,
    /// The provider row's version: an edited provider never serves results of its old recipe.
    pub version: i64,
    pub indicator_type: String,
    pub value: String,
}

#[derive(Debug)]
pub struct Entry {
    /// The result as JSON.
    bytes: Box<[u8]>,
    ttl: Duration,
    /// Serialized size plus a fixed overhead: the cache's unit of capacity.
    weight: u32,
}

/// Bookkeeping per entry on top of the serialized result and the key's text: the key's three
/// allocations, the `Arc`, and moka's map, LRU and expiry-timer nodes. Measured, not guessed: with
/// 256 here, a cache full at its 64 MiB bound raised peak RSS by ~100 MiB (sustained-ingest run,
/// ~900-byte results), i.e. ~1 KiB per entry beyond what was weighed.
const ENTRY_OVERHEAD_BYTES: usize = 1024;

struct PerEntryTtl;

impl Expiry<Key, Arc<Entry>> for PerEntryTtl {
    fn expire_after_create(&self, _key: &Key, value: &Arc<Entry>, _created_at: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
}

#[derive(Clone)]
pub struct ResultCache(Cache<Key, Arc<Entry>>);

impl ResultCache {
    pub fn new(max_bytes: u64) -> Self {
        ResultCache(
            Cache::builder()
                .max_capacity(max_bytes.max(1))
                .weigher(|key: &Key, entry: &Arc<Entry>| entry.weight.saturating_add((key.value.len() + key.provider.len()) as u32))
                .expire_after(PerEntryTtl)
                .build(),
        )
    }

    pub fn get(&self, key: &Key) -> Option<EnrichmentResult> {
        // Bytes this process serialized itself; a failure to parse them back is a miss.
        self.0.get(key).and_then(|entry| serde_json::from_slice(&entry.bytes).ok())
    }

    /// Stores a successful result; anything else is not cached (a failure is retried next time).
    pub fn put(&self, key: Key, result: &EnrichmentResult, ttl: Duration) {
        if !result.success || ttl.is_zero() {
            return;
        }
        let Ok(bytes) = serde_json::to_vec(result) else { return };
        let weight = u32::try_from(bytes.len().saturating_add(ENTRY_OVERHEAD_BYTES)).unwrap_or(u32::MAX);
        self.0.insert(key, Arc::new(Entry { bytes: bytes.into_boxed_slice(), ttl, weight }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Map, json};

    fn key(value: &str) -> Key {
        Key { provider: "p".into(), version: 1, indicator_type: "ip".into(), value: value.into() }
    }

    #[test]
    fn only_successes_and_per_entry_ttl() {
        let cache = ResultCache::new(1024 * 1024);
        let ok = EnrichmentResult::success("p", Map::new(), json!({}));
        cache.put(key("a"), &ok, Duration::from_secs(60));
        cache.put(key("b"), &EnrichmentResult::failed("p", "x"), Duration::from_secs(60));
        cache.put(key("c"), &ok, Duration::from_millis(30));
        assert_eq!(cache.get(&key("a")), Some(ok.clone()));
        assert_eq!(cache.get(&key("b")), None);
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(cache.get(&key("c")), None, "expired");
        assert!(cache.get(&key("a")).is_some());
        let other_version = Key { version: 2, ..key("a") };
        assert_eq!(cache.get(&other_version), None);
    }

    #[test]
    fn bounded_by_bytes() {
        let cache = ResultCache::new(64 * 1024);
        let big = EnrichmentResult::success("p", Map::new(), json!({"blob": "x".repeat(20_000)}));
        for i in 0..20 {
            cache.put(key(&format!("v{i}")), &big, Duration::from_secs(60));
        }
        cache.0.run_pending_tasks();
        assert!(cache.0.weighted_size() <= 64 * 1024, "{}", cache.0.weighted_size());
        assert!(cache.0.entry_count() <= 3, "{}", cache.0.entry_count());
    }
}
