//! The admin actor: answers operator tools (`phalanx members`) over the cluster protocol.
//!
//! Operator tools join the remoting layer as short-lived clients with the cluster key, so
//! they need the same key as the nodes, and a wrong key fails at the handshake.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use phalanx_runtime::{Actor, Context, HandlerError, Reply};
use phalanx_transports::{
    ClusterId, EndpointConfig, EndpointSecurity, Incarnation, Key, NodeId, RemoteMessage, Remoting,
    SharedKeyring,
};
use serde::{Deserialize, Serialize};

use super::{ADMIN_NAME, NodeError};

/// A request to a node's admin actor.
#[derive(Debug, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AdminRequest {
    /// The membership table as that node sees it.
    Members(Reply<Vec<MemberRow>>),
}

impl RemoteMessage for AdminRequest {
    const TAG: &'static str = "phalanx.AdminRequest.v1";
}

/// One member in a node's view of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MemberRow {
    /// The member's 64-bit membership id.
    pub node: u64,
    /// The incarnation of the member's current life.
    pub incarnation: u64,
    /// Where it listens.
    pub addr: SocketAddr,
    /// `alive`, `suspect`, `dead` or `left`.
    pub state: String,
    /// Whether this row is the answering node itself.
    pub is_self: bool,
}

impl MemberRow {
    pub(crate) fn new(node: u64, incarnation: u64, addr: SocketAddr, state: &str) -> MemberRow {
        MemberRow {
            node,
            incarnation,
            addr,
            state: state.to_owned(),
            is_self: false,
        }
    }
}

impl fmt::Display for MemberRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let marker = if self.is_self { " (this node)" } else { "" };
        write!(
            f,
            "{:016x}  {:<8} {:>15}  {}{marker}",
            self.node, self.state, self.incarnation, self.addr
        )
    }
}

pub(crate) struct AdminActor {
    remoting: Arc<Remoting>,
    table: Arc<Mutex<Vec<MemberRow>>>,
}

impl AdminActor {
    pub(crate) fn new(remoting: Arc<Remoting>, table: Arc<Mutex<Vec<MemberRow>>>) -> AdminActor {
        AdminActor { remoting, table }
    }
}

impl Actor for AdminActor {
    type Message = AdminRequest;

    async fn started(&mut self, ctx: &mut Context<Self>) -> Result<(), HandlerError> {
        self.remoting.unregister(ADMIN_NAME);
        self.remoting.register(ADMIN_NAME, &ctx.myself())?;
        Ok(())
    }

    async fn handle(
        &mut self,
        _: &mut Context<Self>,
        msg: AdminRequest,
    ) -> Result<(), HandlerError> {
        match msg {
            AdminRequest::Members(reply) => {
                let rows = self.table.lock().map(|t| t.clone()).unwrap_or_default();
                let _ = reply.send(rows);
            }
        }
        Ok(())
    }
}

/// Asks the node at `addr` for its membership table, as a short-lived client of the cluster.
///
/// # Errors
///
/// [`NodeError::Remote`] if the node cannot be reached, refuses the key, or does not answer.
pub async fn members_of(
    addr: SocketAddr,
    cluster: ClusterId,
    key: Option<Key>,
    timeout: Duration,
) -> Result<Vec<MemberRow>, NodeError> {
    let client = client(addr, cluster, key).await?;
    let node = client.connect(addr, timeout).await?;
    let admin = client
        .lookup::<AdminRequest>(node, ADMIN_NAME, timeout)
        .await?;
    let rows = admin
        .ask(AdminRequest::Members, timeout)
        .await
        .map_err(|error| phalanx_transports::RemoteError::Transport(error.to_string()))?;
    client.shutdown();
    Ok(rows)
}

async fn client(
    target: SocketAddr,
    cluster: ClusterId,
    key: Option<Key>,
) -> Result<Remoting, NodeError> {
    let node = NodeId::random().map_err(|_| NodeError::Random)?;
    let config = EndpointConfig::new(cluster, node, Incarnation(super::incarnation_now()));
    let security = match key {
        Some(key) => EndpointSecurity::Keyring(SharedKeyring::new(key)),
        None => EndpointSecurity::Plaintext,
    };
    // Loopback for a local cluster, otherwise any address of the target's family.
    let bind = match (target.ip().is_loopback(), target.is_ipv4()) {
        (true, true) => SocketAddr::from(([127, 0, 0, 1], 0)),
        (true, false) => SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 0)),
        (false, true) => SocketAddr::from(([0, 0, 0, 0], 0)),
        (false, false) => SocketAddr::from(([0u16; 8], 0)),
    };
    Remoting::bind(bind, config, security)
        .await
        .map_err(|error| NodeError::Bind {
            addr: bind,
            reason: error.to_string(),
        })
}
