//! Per-provider circuit breakers and vendor rate-limit holds, per process. After
//! `ENRICHMENT_BREAKER_FAILURES` consecutive unhealthy calls (transport error, timeout, 5xx) a
//! provider's circuit opens: calls fail at once, without touching the network, until the cooldown
//! ends; then one trial call is let through (half-open) and its outcome closes or re-opens the
//! circuit. A 429 holds the provider until its `Retry-After` (or the cooldown when absent), so a
//! throttling vendor is not hammered.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::engine::Trouble;

#[derive(Default)]
struct Circuit {
    consecutive_failures: u32,
    open_until: Option<Instant>,
    trial_in_flight: bool,
    held_until: Option<Instant>,
}

pub struct Breakers {
    circuits: Mutex<HashMap<String, Circuit>>,
    threshold: u32,
    cooldown: Duration,
}

/// Why a call is not allowed right now.
#[derive(Debug, PartialEq)]
pub enum Refusal {
    CircuitOpen { retry_in: Duration },
    RateLimited { retry_in: Duration },
}

impl Refusal {
    pub fn message(&self) -> String {
        match self {
            Refusal::CircuitOpen { retry_in } => {
                format!("circuit open after repeated failures; next attempt in {}s", retry_in.as_secs().max(1))
            }
            Refusal::RateLimited { retry_in } => {
                format!("rate limited by the provider (HTTP 429); next attempt in {}s", retry_in.as_secs().max(1))
            }
        }
    }
}

impl Breakers {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Breakers { circuits: Mutex::new(HashMap::new()), threshold: threshold.max(1), cooldown }
    }

    /// Asks to call `provider` now. `Ok` must be followed by `record`.
    pub fn admit(&self, provider: &str) -> Result<(), Refusal> {
        let now = Instant::now();
        let mut circuits = self.circuits.lock().unwrap_or_else(|p| p.into_inner());
        let circuit = circuits.entry(provider.to_owned()).or_default();
        if let Some(until) = circuit.held_until {
            if until > now {
                return Err(Refusal::RateLimited { retry_in: until - now });
            }
            circuit.held_until = None;
        }
        match circuit.open_until {
            Some(until) if until > now => Err(Refusal::CircuitOpen { retry_in: until - now }),
            Some(_) if circuit.trial_in_flight => Err(Refusal::CircuitOpen { retry_in: Duration::from_secs(1) }),
            Some(_) => {
                circuit.trial_in_flight = true;
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Records the outcome of an admitted call; returns whether the circuit is open after it.
    pub fn record(&self, provider: &str, trouble: Option<&Trouble>) -> bool {
        let now = Instant::now();
        let mut circuits = self.circuits.lock().unwrap_or_else(|p| p.into_inner());
        let circuit = circuits.entry(provider.to_owned()).or_default();
        circuit.trial_in_flight = false;
        match trouble {
            None => {
                circuit.consecutive_failures = 0;
                circuit.open_until = None;
            }
            Some(Trouble::RateLimited { retry_after }) => {
                circuit.held_until = Some(now + retry_after.unwrap_or(self.cooldown));
            }
            Some(Trouble::Unhealthy) => {
                circuit.consecutive_failures += 1;
                if circuit.open_until.is_some() || circuit.consecutive_failures >= self.threshold {
                    circuit.open_until = Some(now + self.cooldown);
                }
            }
        }
        circuit.open_until.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_half_opens() {
        let breakers = Breakers::new(2, Duration::from_millis(50));
        assert!(breakers.admit("p").is_ok());
        breakers.record("p", Some(&Trouble::Unhealthy));
        assert!(breakers.admit("p").is_ok());
        breakers.record("p", Some(&Trouble::Unhealthy));
        assert!(matches!(breakers.admit("p"), Err(Refusal::CircuitOpen { .. })));
        assert!(breakers.admit("other").is_ok(), "circuits are per provider");
        std::thread::sleep(Duration::from_millis(60));
        assert!(breakers.admit("p").is_ok(), "half-open: one trial");
        assert!(breakers.admit("p").is_err(), "only one trial at a time");
        breakers.record("p", Some(&Trouble::Unhealthy));
        assert!(breakers.admit("p").is_err(), "failed trial re-opens");
        std::thread::sleep(Duration::from_millis(60));
        assert!(breakers.admit("p").is_ok());
        breakers.record("p", None);
        assert!(breakers.admit("p").is_ok());
        assert!(breakers.admit("p").is_ok(), "closed again");
    }

    #[test]
    fn rate_limit_hold() {
        let breakers = Breakers::new(5, Duration::from_secs(30));
        breakers.record("p", Some(&Trouble::RateLimited { retry_after: Some(Duration::from_millis(40)) }));
        let refusal = breakers.admit("p").unwrap_err();
        assert!(matches!(refusal, Refusal::RateLimited { .. }));
        assert!(refusal.message().contains("429"));
        std::thread::sleep(Duration::from_millis(50));
        assert!(breakers.admit("p").is_ok());
    }
}
