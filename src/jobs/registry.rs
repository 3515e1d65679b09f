//! The registry: every job type the workers know, built once at start-up.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::Value;

use super::job::{Job, JobError, RetryPolicy};
use super::JobCtx;

/// Runs a claimed batch of one job type: decodes each payload and calls `Job::run_batch`.
type RunBatch<Ctx> = dyn Fn(Ctx, Vec<(Value, JobCtx)>) -> BoxFuture<'static, Vec<Result<(), JobError>>> + Send + Sync;

/// What the runner needs to know about one registered job type.
pub(crate) struct Entry<Ctx> {
    pub name: &'static str,
    pub queue: &'static str,
    pub batch_size: usize,
    pub retry: RetryPolicy,
    pub run: Arc<RunBatch<Ctx>>,
}

impl<Ctx> Clone for Entry<Ctx> {
    fn clone(&self) -> Self {
        Entry { name: self.name, queue: self.queue, batch_size: self.batch_size, retry: self.retry, run: self.run.clone() }
    }
}

/// A job type enqueued on a schedule (see `periodic`).
#[derive(Clone)]
pub(crate) struct Periodic {
    pub name: &'static str,
    pub queue: &'static str,
    pub every: Duration,
    pub payload: fn() -> Value,
    pub max_attempts: i32,
}

/// The registered tasks of one queue that are claimed together, `batch_size` jobs at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClaimGroup {
    pub batch_size: usize,
    pub queue: &'static str,
    pub tasks: Vec<&'static str>,
}

/// Every job type the workers run, generic over the application context handed to handlers.
/// A job type whose `Context` is another type (e.g. only the `Db`) is registered as long as the
/// application context converts into it (`Ctx: Into<J::Context>`).
pub struct Registry<Ctx> {
    entries: BTreeMap<&'static str, Entry<Ctx>>,
    periodic: Vec<Periodic>,
}

impl<Ctx: Clone + Send + Sync + 'static> Default for Registry<Ctx> {
    fn default() -> Self {
        Self::new()
    }
}

impl<Ctx: Clone + Send + Sync + 'static> Registry<Ctx> {
    pub fn new() -> Self {
        Registry { entries: BTreeMap::new(), periodic: Vec::new() }
    }

    /// Registers `J` with the retry policy it declares.
    pub fn register<J: Job>(self) -> Self
    where
        Ctx: Into<J::Context>,
    {
        self.register_with::<J>(RetryPolicy::of::<J>())
    }

    /// Registers `J` with a retry policy decided at start-up (from settings).
    ///
    /// # Panics
    /// If another job type already uses `J::NAME`: two handlers for one task name is a
    /// programming error, caught by the first start.
    pub fn register_with<J: Job>(mut self, retry: RetryPolicy) -> Self
    where
        Ctx: Into<J::Context>,
    {
        let run: Arc<RunBatch<Ctx>> = Arc::new(|ctx: Ctx, jobs: Vec<(Value, JobCtx)>| Box::pin(run_batch::<J, Ctx>(ctx, jobs)) as BoxFuture<'static, _>);
        let entry = Entry { name: J::NAME, queue: J::QUEUE, batch_size: J::BATCH_SIZE.max(1), retry, run };
        assert!(self.entries.insert(J::NAME, entry).is_none(), "job type '{}' registered twice", J::NAME);
        self
    }

    /// Registers `J` and enqueues it every `every`, once per period across every process that
    /// shares the database (each process's scheduler competes; one conditional UPDATE decides).
    pub fn register_periodic<J: Job + Default>(self, every: Duration) -> Self
    where
        Ctx: Into<J::Context>,
    {
        let mut registry = self.register::<J>();
        let payload: fn() -> Value = || serde_json::to_value(J::default()).unwrap_or_else(|_| Value::Object(Default::default()));
        registry.periodic.push(Periodic {
            name: J::NAME,
            queue: J::QUEUE,
            every: every.max(Duration::from_secs(1)),
            payload,
            max_attempts: J::MAX_ATTEMPTS.max(1),
        });
        registry
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Entry<Ctx>> {
        self.entries.get(name)
    }

    /// The registered task names, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        self.entries.keys().copied().collect()
    }

    /// The queues the registered job types run on, sorted and unique.
    pub fn queues(&self) -> Vec<&'static str> {
        let mut queues: Vec<&'static str> = self.entries.values().map(|e| e.queue).collect();
        queues.sort_unstable();
        queues.dedup();
        queues
    }

    /// Task names grouped by batch size (largest first) and queue: one claim statement per group,
    /// so a batching job type is claimed in batches and the others one at a time. One queue per
    /// claim keeps it on one range of the `(status, queue, run_at)` index, read in order: a claim
    /// over several queues had to collect and sort every due job of all of them, so each claim
    /// cost grew with the backlog (a 64,000-job backlog halved the workers' throughput).
    pub(crate) fn claim_groups(&self) -> Vec<ClaimGroup> {
        let mut groups: BTreeMap<(std::cmp::Reverse<usize>, &'static str), Vec<&'static str>> = BTreeMap::new();
        for entry in self.entries.values() {
            groups.entry((std::cmp::Reverse(entry.batch_size), entry.queue)).or_default().push(entry.name);
        }
        groups.into_iter().map(|((size, queue), tasks)| ClaimGroup { batch_size: size.0, queue, tasks }).collect()
    }

    pub(crate) fn periodic(&self) -> &[Periodic] {
        &self.periodic
    }
}

/// Decodes each payload (a payload that no longer decodes fails alone, for good) and runs the
/// rest as one batch.
async fn run_batch<J: Job, Ctx: Into<J::Context>>(ctx: Ctx, jobs: Vec<(Value, JobCtx)>) -> Vec<Result<(), JobError>> {
    let mut outcomes: Vec<Option<Result<(), JobError>>> = Vec::with_capacity(jobs.len());
    let mut decoded = Vec::with_capacity(jobs.len());
    let mut positions = Vec::with_capacity(jobs.len());
    for (index, (payload, job_ctx)) in jobs.into_iter().enumerate() {
        match serde_json::from_value::<J>(payload) {
            Ok(job) => {
                outcomes.push(None);
                positions.push(index);
                decoded.push((job, job_ctx));
            }
            Err(e) => outcomes.push(Some(Err(JobError::Fatal(format!("{} payload does not decode: {e}", J::NAME))))),
        }
    }
    if !decoded.is_empty() {
        let expected = decoded.len();
        let results = J::run_batch(ctx.into(), decoded).await;
        debug_assert_eq!(results.len(), expected, "{}::run_batch returns one outcome per job", J::NAME);
        let mut results = results.into_iter();
        for index in positions {
            outcomes[index] = Some(results.next().unwrap_or_else(|| Err(JobError::Fatal(format!("{} returned no outcome for this job", J::NAME)))));
        }
    }
    outcomes.into_iter().map(|o| o.unwrap_or_else(|| Err(JobError::Fatal("no outcome".into())))).collect()
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;
    use crate::jobs::Job;

    #[derive(Serialize, Deserialize, Default)]
    struct Ping {
        n: i64,
    }
    impl Job for Ping {
        const NAME: &'static str = "ping";
        type Context = ();
        async fn run(self, _: (), _: JobCtx) -> Result<(), JobError> {
            if self.n < 0 { Err(JobError::Fatal("negative".into())) } else { Ok(()) }
        }
    }

    #[derive(Serialize, Deserialize)]
    struct Bulk;
    impl Job for Bulk {
        const NAME: &'static str = "bulk";
        const QUEUE: &'static str = "enrichment";
        const BATCH_SIZE: usize = 64;
        const MAX_ATTEMPTS: i32 = 5;
        type Context = ();
        async fn run(self, _: (), _: JobCtx) -> Result<(), JobError> {
            Ok(())
        }
    }

    fn job_ctx(id: i64) -> JobCtx {
        JobCtx::new(id, uuid::Uuid::new_v4(), 1, 3, "w".into())
    }

    #[test]
    fn lookups_by_name_queue_and_batch_size() {
        let registry = Registry::<()>::new().register::<Bulk>().register_periodic::<Ping>(Duration::from_millis(10));
        assert_eq!(registry.names(), vec!["bulk", "ping"]);
        assert_eq!(registry.queues(), vec!["default", "enrichment"]);
        let groups: Vec<(usize, &str, Vec<&str>)> =
            registry.claim_groups().into_iter().map(|g| (g.batch_size, g.queue, g.tasks)).collect();
        assert_eq!(groups, vec![(64, "enrichment", vec!["bulk"]), (1, "default", vec!["ping"])]);
        assert!(registry.get("nope").is_none());
        let bulk = registry.get("bulk").unwrap();
        assert_eq!((bulk.queue, bulk.retry.max_attempts), ("enrichment", 5));
        // A periodic job is a registered job too, and its period is at least a second.
        assert_eq!(registry.periodic().len(), 1);
        assert_eq!(registry.periodic()[0].every, Duration::from_secs(1));
        assert_eq!((registry.periodic()[0].payload)(), serde_json::json!({"n": 0}));
    }

    #[test]
    fn a_settings_policy_overrides_the_declared_one() {
        let registry = Registry::<()>::new().register_with::<Ping>(RetryPolicy::fixed(7, Duration::from_secs(60)));
        assert_eq!(registry.get("ping").unwrap().retry, RetryPolicy::fixed(7, Duration::from_secs(60)));
    }

    #[test]
    #[should_panic(expected = "registered twice")]
    fn a_name_registered_twice_is_refused() {
        let _ = Registry::<()>::new().register::<Ping>().register::<Ping>();
    }

    #[tokio::test]
    async fn undecodable_payloads_fail_alone_and_outcomes_keep_their_order() {
        let registry = Registry::<()>::new().register::<Ping>();
        let run = registry.get("ping").unwrap().run.clone();
        let outcomes = run(
            (),
            vec![
                (serde_json::json!({"n": 1}), job_ctx(1)),
                (serde_json::json!({"n": "not a number"}), job_ctx(2)),
                (serde_json::json!({"n": -1}), job_ctx(3)),
            ],
        )
        .await;
        assert!(matches!(outcomes[0], Ok(())));
        assert!(matches!(&outcomes[1], Err(JobError::Fatal(m)) if m.contains("does not decode")), "{:?}", outcomes[1]);
        assert!(matches!(&outcomes[2], Err(JobError::Fatal(m)) if m == "negative"));
    }
}
