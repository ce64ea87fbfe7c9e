//! Session stores that look paired (what `avatar-worker pair` leaves behind), made offline, and a
//! transport that never reaches WhatsApp, so a started session runs its real loop without a network.

use std::sync::Arc;

use whatsapp_rust::transport::{Transport, TransportEvent, TransportFactory};
use whatsapp_rust::wacore::store::traits::{Backend, DeviceStore};
use whatsapp_rust::wacore::store::{Device, InMemoryBackend};

/// Records an account with phone-number JID `pn` in `store`.
pub async fn pair_store(store: &dyn DeviceStore, pn: &str) {
    let mut account = Device::new();
    account.pn = Some(pn.parse().expect("a JID"));
    store.save(&account).await.expect("saved");
}

/// A SQLite session store at `database` (a worker's `<sessions_dir>/<device>.db`) that looks paired.
pub async fn paired_sqlite_store(database: &std::path::Path, pn: &str) {
    let store = whatsapp_rust::store::SqliteStore::new(&database.to_string_lossy())
        .await
        .expect("a SQLite store");
    pair_store(&store, pn).await;
}

pub async fn paired_memory_store(pn: &str) -> Arc<dyn Backend> {
    let store = InMemoryBackend::new();
    pair_store(&store, pn).await;
    Arc::new(store)
}

/// Every connection attempt fails at once, as with no network at all.
pub struct Offline;

#[whatsapp_rust::async_trait]
impl TransportFactory for Offline {
    async fn create_transport(
        &self,
    ) -> Result<
        (
            Arc<dyn Transport>,
            whatsapp_rust::async_channel::Receiver<TransportEvent>,
        ),
        whatsapp_rust::anyhow::Error,
    > {
        Err(whatsapp_rust::anyhow::anyhow!(
            "offline: this test never reaches WhatsApp"
        ))
    }
}

/// The transport of clients that never reach WhatsApp.
pub fn offline_transport() -> Arc<dyn TransportFactory> {
    Arc::new(Offline)
}

/// A web client version to announce, so that nothing is fetched either.
pub const OFFLINE_VERSION: (u32, u32, u32) = (2, 3000, 1_000_000_000);
