//! `weir:connector/keys`: keyed hashes under secrets the pipeline grants by name. The key
//! bytes stay in the host; a plugin sees only digests.

use crate::bindings::weir::connector::keys::Host;
use crate::bindings::weir::connector::types::Error;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::collections::BTreeMap;

/// A secret the host holds for a plugin. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(Vec<u8>);

impl Key {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Key {
        Key(bytes.into())
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

pub(crate) struct KeysCtx {
    pub(crate) keys: BTreeMap<String, Key>,
}

impl Host for KeysCtx {
    fn hmac_sha256(&mut self, name: String, messages: Vec<Vec<u8>>) -> Result<Vec<Vec<u8>>, Error> {
        let Some(Key(key)) = self.keys.get(&name) else {
            // The name is the plugin's own string: said back bounded, never with the keys
            // that do exist.
            let shown: String = name.chars().take(64).collect();
            return Err(Error::Config(format!(
                "no key `{shown}` is granted (grants.keys)"
            )));
        };
        let mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
        Ok(messages
            .iter()
            .map(|m| {
                let mut mac = mac.clone();
                mac.update(m);
                mac.finalize().into_bytes().to_vec()
            })
            .collect())
    }
}
