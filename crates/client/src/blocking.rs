//! The blocking facade: the same client for scripts, command-line tools and
//! tests, driving the asynchronous one on a private single-threaded runtime.
//! Not for use inside an async runtime (blocking there would stall it; call
//! the asynchronous [`crate::Client`] instead).

use serde_json::Value;

use crate::{ClientBuilder, Context, Object, Options, Result, Sibling};

/// A blocking dynakv client.
pub struct Client {
    runtime: tokio::runtime::Runtime,
    inner: crate::Client,
}

impl Client {
    pub(crate) fn new(builder: ClientBuilder) -> Result<Client> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| crate::Error::InvalidResponse(format!("cannot start a runtime: {e}")))?;
        Ok(Client {
            inner: builder.build()?,
            runtime,
        })
    }

    /// The asynchronous client underneath.
    pub fn inner(&self) -> &crate::Client {
        &self.inner
    }

    /// See [`crate::Client::get`].
    pub fn get(&self, key: &[u8]) -> Result<Object> {
        self.runtime.block_on(self.inner.get(key))
    }

    /// See [`crate::Client::get_with`].
    pub fn get_with(&self, key: &[u8], opts: &Options) -> Result<Object> {
        self.runtime.block_on(self.inner.get_with(key, opts))
    }

    /// See [`crate::Client::put`].
    pub fn put(&self, key: &[u8], value: Sibling, context: Option<&Context>) -> Result<Context> {
        self.runtime.block_on(self.inner.put(key, value, context))
    }

    /// See [`crate::Client::put_with`].
    pub fn put_with(
        &self,
        key: &[u8],
        value: Sibling,
        context: Option<&Context>,
        opts: &Options,
    ) -> Result<Context> {
        self.runtime
            .block_on(self.inner.put_with(key, value, context, opts))
    }

    /// See [`crate::Client::delete`].
    pub fn delete(&self, key: &[u8], context: Option<&Context>) -> Result<()> {
        self.runtime.block_on(self.inner.delete(key, context))
    }

    /// See [`crate::Client::delete_with`].
    pub fn delete_with(&self, key: &[u8], context: Option<&Context>, opts: &Options) -> Result<()> {
        self.runtime
            .block_on(self.inner.delete_with(key, context, opts))
    }

    /// See [`crate::Client::modify`].
    pub fn modify<F>(&self, key: &[u8], opts: &Options, merge: F) -> Result<Context>
    where
        F: FnMut(&[Sibling]) -> Sibling,
    {
        self.runtime.block_on(self.inner.modify(key, opts, merge))
    }

    /// See [`crate::Client::status`].
    pub fn status(&self) -> Result<Value> {
        self.runtime.block_on(self.inner.status())
    }

    /// See [`crate::Client::ring`].
    pub fn ring(&self) -> Result<Value> {
        self.runtime.block_on(self.inner.ring())
    }

    /// See [`crate::Client::repair`].
    pub fn repair(&self) -> Result<Value> {
        self.runtime.block_on(self.inner.repair())
    }

    /// See [`crate::Client::leave`].
    pub fn leave(&self) -> Result<Value> {
        self.runtime.block_on(self.inner.leave())
    }

    /// See [`crate::Client::remove`].
    pub fn remove(&self, name: &str) -> Result<Value> {
        self.runtime.block_on(self.inner.remove(name))
    }

    /// See [`crate::Client::plan`].
    pub fn plan(&self, query: &[(&str, String)]) -> Result<Value> {
        self.runtime.block_on(self.inner.plan(query))
    }

    /// See [`crate::Client::metrics`].
    pub fn metrics(&self) -> Result<String> {
        self.runtime.block_on(self.inner.metrics())
    }

    /// See [`crate::Client::set_faults`].
    pub fn set_faults(&self, spec: &Value) -> Result<()> {
        self.runtime.block_on(self.inner.set_faults(spec))
    }

    /// See [`crate::Client::export_partition`].
    pub fn export_partition(&self, partition: usize) -> Result<Vec<crate::Record>> {
        self.runtime
            .block_on(self.inner.export_partition(partition))
    }

    /// See [`crate::Client::health`].
    pub fn health(&self) -> Result<()> {
        self.runtime.block_on(self.inner.health())
    }

    /// See [`crate::Client::placement`].
    pub fn placement(&self, key: &str) -> Result<Value> {
        self.runtime.block_on(self.inner.placement(key))
    }
}
