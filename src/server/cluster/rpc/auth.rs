//! Mutual authentication with the cluster secret.
//!
//! The server sends a random nonce; the client answers with
//! `HMAC-SHA256(secret, "dynakv client" ‖ nonce ‖ client name)`, its name and
//! a nonce of its own; the server checks the proof and answers with
//! `HMAC-SHA256(secret, "dynakv server" ‖ client nonce ‖ server name)` and its
//! name. The secret never travels, a recorded exchange cannot be replayed
//! (fresh nonces), the role labels stop a proof from being reflected back,
//! and the names are covered: a node cannot claim another's name without the
//! secret. Without a configured secret
//! the key is empty, so secret-less nodes still interoperate with each other but
//! never with a node that has one.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Which side produces a proof.
#[derive(Clone, Copy, Debug)]
pub enum Role {
    /// The connecting node.
    Client,
    /// The accepting node.
    Server,
}

fn mac(secret: Option<&str>, role: Role, nonce: &[u8; 32], name: &str) -> HmacSha256 {
    let key = secret.unwrap_or_default().as_bytes();
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(match role {
        Role::Client => b"dynakv client",
        Role::Server => b"dynakv server",
    });
    mac.update(nonce);
    mac.update(name.as_bytes());
    mac
}

/// The proof that `role`, named `name`, knows `secret`, bound to `nonce`.
pub fn prove(secret: Option<&str>, role: Role, nonce: &[u8; 32], name: &str) -> [u8; 32] {
    mac(secret, role, nonce, name)
        .finalize()
        .into_bytes()
        .into()
}

/// Checks a proof in constant time.
pub fn verify(
    secret: Option<&str>,
    role: Role,
    nonce: &[u8; 32],
    name: &str,
    proof: &[u8; 32],
) -> bool {
    mac(secret, role, nonce, name).verify_slice(proof).is_ok()
}

/// A fresh random nonce.
pub fn nonce() -> [u8; 32] {
    rand::random()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_verify_only_with_the_same_secret_role_nonce_and_name() {
        let n = nonce();
        let p = prove(Some("s3cret"), Role::Client, &n, "n1");
        assert!(verify(Some("s3cret"), Role::Client, &n, "n1", &p));
        assert!(!verify(Some("other"), Role::Client, &n, "n1", &p));
        assert!(!verify(None, Role::Client, &n, "n1", &p));
        assert!(!verify(Some("s3cret"), Role::Server, &n, "n1", &p));
        assert!(!verify(Some("s3cret"), Role::Client, &nonce(), "n1", &p));
        // The name is covered: a proof made as n1 does not pass as n2.
        assert!(!verify(Some("s3cret"), Role::Client, &n, "n2", &p));
    }
}
