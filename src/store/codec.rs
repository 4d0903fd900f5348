//! How records are encoded inside the database: CBOR through the wire codec's
//! crate, so a record written by one version is readable by the next as long
//! as its serde shape stays compatible.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::StoreError;

pub(crate) fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    cbor4ii::serde::to_vec(Vec::new(), value).map_err(|e| StoreError::Encode {
        what,
        detail: e.to_string(),
    })
}

pub(crate) fn decode<T: DeserializeOwned>(
    what: impl std::fmt::Display,
    bytes: &[u8],
) -> Result<T, StoreError> {
    cbor4ii::serde::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        what: what.to_string(),
        detail: e.to_string(),
    })
}
