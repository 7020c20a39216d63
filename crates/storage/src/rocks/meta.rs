//! Metadata records (identity, member table, ring, checkpoints) in the
//! `meta` column family.

use dynakv_versioning::ActorId;
use rocksdb::{WriteBatch, WriteOptions};
use serde::Serialize;

use super::{Cf, Identity, Storage};
use crate::{StorageError, codec};

pub(super) const META_IDENTITY: &str = "identity";

impl Storage {
    /// The identity recorded in this data directory, creating it (with a fresh
    /// actor id) if the directory is new. Refuses a directory of another node.
    pub fn load_or_create_identity(&self, name: &str) -> Result<Identity, StorageError> {
        if let Some(stored) = self.get_meta::<Identity>(META_IDENTITY)? {
            if stored.name != name {
                return Err(StorageError::WrongNode {
                    stored: stored.name,
                    requested: name.to_string(),
                });
            }
            return Ok(stored);
        }
        let identity = Identity {
            name: name.to_string(),
            actor: ActorId::random(),
        };
        self.put_meta(META_IDENTITY, &identity)?;
        Ok(identity)
    }

    /// Reads a metadata record.
    pub fn get_meta<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, StorageError> {
        match self.db.get_pinned_cf(self.cf(Cf::Meta), name.as_bytes())? {
            None => Ok(None),
            Some(bytes) => {
                codec::decode_unchanged(&bytes)
                    .map(Some)
                    .map_err(|e| StorageError::Corrupt {
                        key: name.as_bytes().to_vec(),
                        reason: e.to_string(),
                    })
            }
        }
    }

    /// Writes a metadata record (always fsynced: metadata changes are rare and must
    /// survive a crash).
    pub fn put_meta<T: Serialize>(&self, name: &str, value: &T) -> Result<(), StorageError> {
        let mut wo = WriteOptions::default();
        wo.set_sync(true);
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(Cf::Meta), name.as_bytes(), codec::encode(value));
        self.db.write_opt(batch, &wo)?;
        Ok(())
    }

    /// True if a metadata record exists (whatever its format).
    pub fn has_meta(&self, name: &str) -> Result<bool, StorageError> {
        Ok(self
            .db
            .get_pinned_cf(self.cf(Cf::Meta), name.as_bytes())?
            .is_some())
    }

    /// Deletes a metadata record.
    pub fn delete_meta(&self, name: &str) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.delete_cf(self.cf(Cf::Meta), name.as_bytes());
        self.db.write_opt(batch, &self.write_opts)?;
        Ok(())
    }

    /// Writes a metadata record without waiting for fsync (progress records
    /// whose loss only repeats work).
    pub fn put_meta_lazy<T: Serialize>(&self, name: &str, value: &T) -> Result<(), StorageError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(Cf::Meta), name.as_bytes(), codec::encode(value));
        self.db.write_opt(batch, &self.write_opts)?;
        Ok(())
    }
}
