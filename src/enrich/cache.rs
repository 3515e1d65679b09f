//! The per-process result cache: successful results only, keyed by (provider, provider version,
//! indicator type, value), each entry living for its provider's TTL for that type, bounded in
//! size (least recently used evicted first) so a flood of unique indicators cannot grow memory
//! without limit (Calseta's cache had no bound).

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
    pub result: EnrichmentResult,
    ttl: Duration,
}

struct PerEntryTtl;

impl Expiry<Key, Arc<Entry>> for PerEntryTtl {
    fn expire_after_create(&self, _key: &Key, value: &Arc<Entry>, _created_at: Instant) -> Option<Duration> {
        Some(value.ttl)
    }
}

#[derive(Clone)]
pub struct ResultCache(Cache<Key, Arc<Entry>>);

impl ResultCache {
    pub fn new(max_entries: u64) -> Self {
        ResultCache(Cache::builder().max_capacity(max_entries.max(1)).expire_after(PerEntryTtl).build())
    }

    pub fn get(&self, key: &Key) -> Option<EnrichmentResult> {
        self.0.get(key).map(|entry| entry.result.clone())
    }

    /// Stores a successful result; anything else is not cached (a failure is retried next time).
    pub fn put(&self, key: Key, result: &EnrichmentResult, ttl: Duration) {
        if result.success && !ttl.is_zero() {
            self.0.insert(key, Arc::new(Entry { result: result.clone(), ttl }));
        }
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
        let cache = ResultCache::new(100);
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
}
