//! The order in which a route's targets are tried.
//!
//! `priority` routes try their targets in the configured order. `weighted` routes pick the
//! first target by smooth weighted round-robin (nginx's algorithm: deterministic, and spread
//! evenly rather than in bursts), then fall back to the others by descending weight.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::config::{Route, Strategy};

/// Round-robin state of every weighted route.
#[derive(Debug, Default)]
pub(super) struct Balancer {
    current: Mutex<HashMap<String, Vec<i64>>>,
}

impl Balancer {
    /// The indices of `route.targets` in the order to try them.
    pub(super) fn order(&self, route: &Route) -> Vec<usize> {
        let mut order: Vec<usize> = (0..route.targets.len()).collect();
        if route.strategy == Strategy::Priority || route.targets.len() < 2 {
            return order;
        }
        let first = self.pick(route);
        // Stable sort: equal weights keep their configured order.
        order.sort_by_key(|&i| (i != first, std::cmp::Reverse(route.targets[i].weight)));
        order
    }

    /// Keeps the state of routes for which `keep` is true (the configured ones).
    pub(super) fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|name, _| keep(name));
    }

    fn pick(&self, route: &Route) -> usize {
        let weights: Vec<i64> = route.targets.iter().map(|t| i64::from(t.weight)).collect();
        let total: i64 = weights.iter().sum();
        let mut all = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        let current = all.entry(route.name.to_string()).or_default();
        if current.len() != weights.len() {
            *current = vec![0; weights.len()];
        }
        let mut best = 0;
        for (i, weight) in weights.iter().enumerate() {
            current[i] += weight;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        best
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::{Target, test_target};

    fn route(strategy: Strategy, weights: &[u32]) -> Route {
        let targets = weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| Target {
                weight,
                ..test_target("mock", "p", &format!("m{i}"))
            })
            .collect();
        Route {
            name: Arc::from("r"),
            targets,
            strategy,
            failover_on_timeout: true,
            on_payment_required: crate::config::OnPaymentRequired::Quote,
            direct: false,
            embeddings: false,
        }
    }

    #[test]
    fn priority_keeps_the_configured_order() {
        let balancer = Balancer::default();
        let route = route(Strategy::Priority, &[1, 5, 1]);
        assert_eq!(balancer.order(&route), vec![0, 1, 2]);
    }

    #[test]
    fn weighted_spreads_smoothly_and_falls_back_by_weight() {
        let balancer = Balancer::default();
        let route = route(Strategy::Weighted, &[5, 1, 1]);
        let firsts: Vec<usize> = (0..7).map(|_| balancer.order(&route)[0]).collect();
        // nginx's smooth sequence for 5:1:1.
        assert_eq!(firsts, vec![0, 0, 1, 0, 2, 0, 0]);
        let order = balancer.order(&route);
        assert_eq!(order.len(), 3);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![0, 1, 2]);
    }
}
