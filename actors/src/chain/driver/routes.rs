//! Where clients are hosted, as learned from packets: a bounded table.

use std::collections::HashMap;

use crate::chain::config::ClientId;

/// The most client routes remembered; the table is cleared when it would grow past this
/// (clients whose routes were forgotten get theirs back with their next packet).
const MAX_ROUTES: usize = 65_536;

/// Client id to the node that hosts it.
#[derive(Debug, Default)]
pub(super) struct Routes {
    routes: HashMap<ClientId, u64>,
}

impl Routes {
    /// Learns the routes a packet carries.
    pub(super) fn learn(&mut self, routes: &[(ClientId, u64)]) {
        for &(client, node) in routes {
            if self.routes.len() >= MAX_ROUTES && !self.routes.contains_key(&client) {
                self.routes.clear();
            }
            self.routes.insert(client, node);
        }
    }

    /// The routes of `clients` that are known, each once.
    pub(super) fn of(&self, clients: impl IntoIterator<Item = ClientId>) -> Vec<(ClientId, u64)> {
        let mut found: Vec<(ClientId, u64)> = clients
            .into_iter()
            .filter_map(|client| self.routes.get(&client).map(|&node| (client, node)))
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_and_answers_each_client_once() {
        let mut routes = Routes::default();
        routes.learn(&[(ClientId(1), 10), (ClientId(2), 20)]);
        routes.learn(&[(ClientId(1), 11)]);
        let found = routes.of([ClientId(1), ClientId(1), ClientId(3), ClientId(2)]);
        assert_eq!(found, vec![(ClientId(1), 11), (ClientId(2), 20)]);
    }

    #[test]
    fn stays_bounded() {
        let mut routes = Routes::default();
        for i in 0..(MAX_ROUTES as u64 + 10) {
            routes.learn(&[(ClientId(i), i)]);
        }
        assert!(routes.routes.len() <= MAX_ROUTES);
    }
}
