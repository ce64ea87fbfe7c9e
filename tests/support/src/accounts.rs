//! Session stores that look paired (what `avatar-worker pair` leaves behind), made offline.

use std::sync::Arc;

use whatsapp_rust::wacore::store::traits::{Backend, DeviceStore};
use whatsapp_rust::wacore::store::{Device, InMemoryBackend};

/// Records an account with phone-number JID `pn` in `store`.
pub async fn pair_store(store: &dyn DeviceStore, pn: &str) {
    let mut account = Device::new();
    account.pn = Some(pn.parse().expect("a JID"));
    store.save(&account).await.expect("saved");
}

pub async fn paired_memory_store(pn: &str) -> Arc<dyn Backend> {
    let store = InMemoryBackend::new();
    pair_store(&store, pn).await;
    Arc::new(store)
}
