use lapin::{Connection, ConnectionProperties};
use secrecy::{ExposeSecret, SecretString};

/// Opens one connection. The name shows in the management UI, so operators can tell workers apart.
pub async fn connect(url: &SecretString, name: &str) -> Result<Connection, lapin::Error> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect(url.expose_secret(), properties).await
}
