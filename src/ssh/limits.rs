//! The SSH server's limits as plain logic (no I/O): refused authentication attempts per
//! source address in a sliding minute.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The window the attempts are counted in.
pub const AUTH_WINDOW: Duration = Duration::from_secs(60);

/// Refused authentication attempts by source address: past `limit` in [`AUTH_WINDOW`],
/// every attempt from that address is refused until the oldest ones age out.
#[derive(Debug)]
pub struct AuthLimiter {
    limit: usize,
    refused: HashMap<IpAddr, Vec<Instant>>,
}

impl AuthLimiter {
    pub fn new(limit: u32) -> AuthLimiter {
        AuthLimiter {
            limit: limit.max(1) as usize,
            refused: HashMap::new(),
        }
    }

    /// Whether `addr` used up its refusals for now.
    pub fn blocked(&mut self, addr: IpAddr, now: Instant) -> bool {
        self.prune(now);
        self.refused
            .get(&addr)
            .is_some_and(|times| times.len() >= self.limit)
    }

    /// Counts one refused attempt from `addr`; true when that used up its refusals.
    pub fn refuse(&mut self, addr: IpAddr, now: Instant) -> bool {
        self.prune(now);
        let times = self.refused.entry(addr).or_default();
        times.push(now);
        times.len() >= self.limit
    }

    /// Forgets attempts older than the window, and addresses with none left.
    fn prune(&mut self, now: Instant) {
        self.refused.retain(|_, times| {
            times.retain(|at| now.saturating_duration_since(*at) < AUTH_WINDOW);
            !times.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_blocked_after_its_refusals_until_they_age_out() {
        let mut limiter = AuthLimiter::new(3);
        let start = Instant::now();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(!limiter.refuse(a, start));
        assert!(!limiter.refuse(a, start + Duration::from_secs(10)));
        assert!(!limiter.blocked(a, start + Duration::from_secs(11)));
        assert!(limiter.refuse(a, start + Duration::from_secs(20)));
        assert!(limiter.blocked(a, start + Duration::from_secs(21)));
        assert!(
            !limiter.blocked(b, start + Duration::from_secs(21)),
            "per address"
        );
        assert!(
            !limiter.blocked(a, start + Duration::from_secs(61)),
            "the first refusal aged out"
        );
        assert!(limiter.refused.contains_key(&a));
        assert!(!limiter.blocked(a, start + Duration::from_secs(200)));
        assert!(limiter.refused.is_empty(), "old addresses are forgotten");
    }
}
