//! `weir:connector/objects`: object storage through `object_store`, confined to the
//! pipeline's grant: one store, one prefix that is the plugin's root, credentials that stay
//! in the host. A directory is served by [`dir`], beneath a handle that never follows links.

mod dir;

use crate::bindings::weir::connector::objects::{Host, ObjectInfo};
use crate::bindings::weir::connector::types::Error;
use crate::confined::HostDir;
use dir::DirStore;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::fmt;
use std::sync::Arc;

/// Where a pipeline side may read and write objects. `Debug` leaves the secrets out.
#[derive(Clone)]
pub struct ObjectsGrant {
    pub location: ObjectLocation,
    /// A label for errors and logs: `s3://bucket/prefix` or the directory.
    pub describe: String,
}

#[derive(Clone)]
pub enum ObjectLocation {
    S3 {
        bucket: String,
        prefix: String,
        region: String,
        /// Another S3 API than AWS's (MinIO, moto, Ceph): path-style requests go there.
        endpoint: Option<String>,
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
        allow_http: bool,
    },
    Dir(HostDir),
}

impl fmt::Debug for ObjectsGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectsGrant")
            .field("location", &self.describe)
            .finish_non_exhaustive()
    }
}

/// An opened store: one client (and its connection pool) per instance.
#[derive(Clone)]
pub(crate) enum Store {
    Remote(Arc<dyn ObjectStore>),
    Dir(Arc<DirStore>),
}

impl ObjectsGrant {
    /// The store, rooted at the granted prefix.
    pub(crate) fn open(&self) -> Result<Store, Error> {
        let failed = |e: &dyn fmt::Display| {
            Error::Config(format!("{}: cannot open the store: {e}", self.describe))
        };
        Ok(match &self.location {
            ObjectLocation::S3 {
                bucket,
                prefix,
                region,
                endpoint,
                access_key_id,
                secret_access_key,
                allow_http,
            } => {
                let mut b = object_store::aws::AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(region)
                    .with_allow_http(*allow_http);
                if let Some(endpoint) = endpoint {
                    b = b
                        .with_endpoint(endpoint)
                        .with_virtual_hosted_style_request(false);
                }
                if let (Some(id), Some(secret)) = (access_key_id, secret_access_key) {
                    b = b.with_access_key_id(id).with_secret_access_key(secret);
                }
                let store = b.build().map_err(|e| failed(&e))?;
                Store::Remote(Arc::new(PrefixStore::new(store, prefix.as_str())))
            }
            ObjectLocation::Dir(dir) => Store::Dir(Arc::new(DirStore::new(
                dir.create().map_err(|e| failed(&e))?,
                self.describe.clone(),
            ))),
        })
    }
}

/// A key as the plugin gave it: relative, and never out of the granted prefix.
pub(crate) fn key(k: &str) -> Result<Path, Error> {
    Path::parse(k).map_err(|e| Error::Config(format!("invalid object key `{k}`: {e}")))
}

/// The object-storage capability of one instance: its grant, and the store client
/// opened on first use and kept (one client, and its connection pool, per instance).
pub(crate) struct ObjectsCtx {
    pub(crate) grant: Option<ObjectsGrant>,
    pub(crate) store: Option<Store>,
}

impl ObjectsCtx {
    fn store(&mut self) -> Result<(Store, String), Error> {
        let grant = self
            .grant
            .as_ref()
            .ok_or_else(|| Error::Config("this plugin has no object storage grant".into()))?;
        let describe = grant.describe.clone();
        if let Some(store) = &self.store {
            return Ok((store.clone(), describe));
        }
        let store = grant.open()?;
        self.store = Some(store.clone());
        Ok((store, describe))
    }
}

fn failed(at: &str, what: &str, e: object_store::Error) -> Error {
    let message = format!("{at}: {what}: {e}");
    match e {
        object_store::Error::NotFound { .. }
        | object_store::Error::InvalidPath { .. }
        | object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => Error::Config(message),
        // Network trouble, throttling, a server error: retry.
        _ => Error::Transient(message),
    }
}

fn dir_failed(at: &str, what: &str, e: std::io::Error) -> Error {
    let message = format!("{at}: {what}: {e}");
    match e.kind() {
        std::io::ErrorKind::Interrupted
        | std::io::ErrorKind::WouldBlock
        | std::io::ErrorKind::TimedOut => Error::Transient(message),
        // Missing, refused, a link met: the store is not usable as the plugin asked.
        _ => Error::Config(message),
    }
}

impl Host for ObjectsCtx {
    async fn list(
        &mut self,
        prefix: String,
        start_after: Option<String>,
        max: u32,
    ) -> Result<Vec<ObjectInfo>, Error> {
        let (store, at) = self.store()?;
        // Stores list by path segments; the plugin asks by a key prefix, which may end
        // inside a segment, so list its folder and filter.
        let folder = match prefix.rfind('/') {
            Some(i) => Some(key(&prefix[..i])?),
            None => None,
        };
        let offset = start_after.as_deref().map(key).transpose()?;
        let listed: Vec<ObjectInfo> = match store {
            Store::Remote(store) => match &offset {
                Some(o) => store.list_with_offset(folder.as_ref(), o),
                None => store.list(folder.as_ref()),
            }
            .try_collect::<Vec<_>>()
            .await
            .map_err(|e| failed(&at, "cannot list", e))?
            .into_iter()
            .map(|m| ObjectInfo {
                key: m.location.to_string(),
                size: m.size,
                etag: m.e_tag,
                last_modified_ms: m.last_modified.timestamp_millis(),
            })
            .collect(),
            Store::Dir(dir) => dir
                .list(folder.as_ref().map(|f| f.as_ref()))
                .map_err(|e| dir_failed(&at, "cannot list", e))?
                .into_iter()
                .map(|l| ObjectInfo {
                    key: l.key,
                    size: l.size,
                    etag: Some(l.etag),
                    last_modified_ms: l.last_modified_ms,
                })
                .collect(),
        };
        let mut infos: Vec<ObjectInfo> = listed
            .into_iter()
            .filter(|m| m.key.starts_with(prefix.as_str()))
            .filter(|m| start_after.as_deref().is_none_or(|s| m.key.as_str() > s))
            .collect();
        // Not every store lists in order (a local directory does not).
        infos.sort_by(|a, b| a.key.cmp(&b.key));
        infos.truncate(max as usize);
        Ok(infos)
    }

    async fn read(&mut self, k: String, offset: u64, len: u32) -> Result<Vec<u8>, Error> {
        let (store, at) = self.store()?;
        let path = key(&k)?;
        match store {
            Store::Remote(store) => async {
                let size = store.head(&path).await?.size;
                let end = (offset + u64::from(len)).min(size);
                if offset >= end {
                    return Ok(Vec::new());
                }
                store
                    .get_range(&path, offset..end)
                    .await
                    .map(|b| b.to_vec())
            }
            .await
            .map_err(|e| failed(&at, &format!("cannot read `{k}`"), e)),
            Store::Dir(dir) => dir
                .read(path.as_ref(), offset, len)
                .map_err(|e| dir_failed(&at, &format!("cannot read `{k}`"), e)),
        }
    }

    async fn write(&mut self, k: String, data: Vec<u8>) -> Result<(), Error> {
        let (store, at) = self.store()?;
        let path = key(&k)?;
        match store {
            Store::Remote(store) => store
                .put(&path, PutPayload::from(data))
                .await
                .map(|_| ())
                .map_err(|e| failed(&at, &format!("cannot write `{k}`"), e)),
            Store::Dir(dir) => dir
                .write(path.as_ref(), &data)
                .map_err(|e| dir_failed(&at, &format!("cannot write `{k}`"), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::key;

    #[test]
    fn keys_cannot_climb_out_of_the_granted_prefix() {
        assert!(key("a/b.jsonl").is_ok());
        for bad in ["../secret", "a/../../b", "a//b"] {
            assert!(key(bad).is_err(), "{bad}");
        }
    }
}
