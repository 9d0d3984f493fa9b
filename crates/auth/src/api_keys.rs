//! API keys (`auth.api_keys`): looked up by the SHA-256 of what the caller sent, compared in
//! constant time, so neither the key nor its hash leaks through timing.

use std::sync::Arc;

use http::HeaderName;

use crate::{sha256, Identity};

pub struct ApiKeys {
    pub header: HeaderName,
    keys: Vec<([u8; 32], Arc<Identity>)>,
}

impl ApiKeys {
    pub fn new(header: HeaderName, keys: Vec<([u8; 32], Arc<Identity>)>) -> ApiKeys {
        ApiKeys { header, keys }
    }

    /// The identity of the key the caller sent. Every configured key is compared, whatever
    /// matches first, so the time taken does not say which one did.
    pub fn find(&self, presented: &[u8]) -> Option<Arc<Identity>> {
        let digest = sha256(presented);
        let mut found = None;
        for (hash, identity) in &self.keys {
            if aws_lc_rs::constant_time::verify_slices_are_equal(hash, &digest).is_ok() {
                found = Some(identity.clone());
            }
        }
        found
    }
}
