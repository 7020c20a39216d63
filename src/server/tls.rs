//! TLS for the node's listeners (rustls with the `ring` provider; no
//! OpenSSL): the client-facing HTTP port, Riak's Protocol Buffers port (after
//! `RpbStartTls`), and node-to-node connections.
//!
//! One certificate per node, signed by the cluster's CA (`dynakv certs`),
//! names the node (a DNS name equal to its node name) and the addresses
//! clients reach it at. Node-to-node connections are **mutual**: each side
//! presents its certificate and checks the other's against the CA, and once
//! the peer has proven the cluster secret under its name (the RPC
//! handshake), that name must be one its certificate carries, so a node
//! holding a certificate for another name is refused. Clients are not asked
//! for certificates.
//!
//! The files are read at start and again on `SIGHUP` ([`Tls::reload`]); a
//! reload that fails keeps the certificates in use and says why.

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

/// The three files a node's TLS is made of.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// This node's certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The cluster CA's certificate (PEM): peers are checked against it.
    pub ca: PathBuf,
}

/// The configurations built from the files.
struct Loaded {
    clients: Arc<ServerConfig>,
    peers_in: Arc<ServerConfig>,
    peers_out: Arc<ClientConfig>,
}

/// A node's TLS: acceptors and connectors over the current certificates.
pub struct Tls {
    files: TlsFiles,
    /// The node the certificate must name (checked at every load).
    node: Option<String>,
    loaded: RwLock<Arc<Loaded>>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("files", &self.files).finish()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificates of a PEM file.
pub fn read_certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(certs)
}

fn load(files: &TlsFiles) -> Result<Loaded, String> {
    let chain = read_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| format!("{}: {e}", files.key.display()))?;
    let mut roots = RootCertStore::empty();
    for ca in read_certs(&files.ca)? {
        roots
            .add(ca)
            .map_err(|e| format!("{}: {e}", files.ca.display()))?;
    }
    let roots = Arc::new(roots);
    let bad = |what: &str, e: rustls::Error| format!("{what}: {e}");
    let versions = rustls::DEFAULT_VERSIONS;
    let mut clients = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|e| bad("TLS versions", e))?
        .with_no_client_auth()
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(|e| bad("the node's certificate and key", e))?;
    clients.alpn_protocols = vec![b"http/1.1".to_vec()];
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), provider())
        .build()
        .map_err(|e| format!("the CA: {e}"))?;
    let peers_in = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|e| bad("TLS versions", e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), key.clone_key())
        .map_err(|e| bad("the node's certificate and key", e))?;
    let peers_out = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|e| bad("TLS versions", e))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(SignedByCa {
            roots,
            algorithms: provider().signature_verification_algorithms,
        }))
        .with_client_auth_cert(chain, key)
        .map_err(|e| bad("the node's certificate and key", e))?;
    Ok(Loaded {
        clients: Arc::new(clients),
        peers_in: Arc::new(peers_in),
        peers_out: Arc::new(peers_out),
    })
}

impl Tls {
    /// Reads the files; the error names the one that is wrong.
    pub fn load(files: TlsFiles) -> Result<Tls, String> {
        let loaded = load(&files)?;
        Ok(Tls {
            files,
            node: None,
            loaded: RwLock::new(Arc::new(loaded)),
        })
    }

    /// [`Tls::load`] for the node named `node`, whose certificate must name
    /// it (peers check it: one that did not could never join), now and at
    /// every reload.
    pub fn load_for(files: TlsFiles, node: &str) -> Result<Tls, String> {
        check_names(&files, node)?;
        let mut tls = Tls::load(files)?;
        tls.node = Some(node.to_string());
        Ok(tls)
    }

    /// Reads the files again (`SIGHUP`): new connections use the new
    /// certificates; on an error the old ones stay.
    pub fn reload(&self) -> Result<(), String> {
        if let Some(node) = &self.node {
            check_names(&self.files, node)?;
        }
        let loaded = load(&self.files)?;
        *self.loaded.write() = Arc::new(loaded);
        Ok(())
    }

    /// Accepts TLS from clients (HTTP, PB after `RpbStartTls`).
    pub fn for_clients(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::clone(&self.loaded.read().clients))
    }

    /// Accepts TLS from peers: their certificate must be signed by the CA.
    pub fn for_peers_in(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(Arc::clone(&self.loaded.read().peers_in))
    }

    /// Connects to peers with this node's certificate, checking theirs
    /// against the CA (their name is checked after the RPC handshake).
    pub fn for_peers_out(&self) -> tokio_rustls::TlsConnector {
        tokio_rustls::TlsConnector::from(Arc::clone(&self.loaded.read().peers_out))
    }
}

fn check_names(files: &TlsFiles, node: &str) -> Result<(), String> {
    let own = read_certs(&files.cert)?;
    if names(&own[0], node) {
        Ok(())
    } else {
        Err(format!(
            "the certificate in {} does not name this node ({node}); make one with `dynakv certs node {node}`",
            files.cert.display()
        ))
    }
}

/// True if `cert` (a peer's end-entity certificate, already checked against
/// the CA) names the member `name` (a DNS name of the certificate).
pub fn names(cert: &CertificateDer<'_>, name: &str) -> bool {
    let Ok(server_name) = ServerName::try_from(name) else {
        return false;
    };
    webpki::EndEntityCert::try_from(cert)
        .and_then(|ee| ee.verify_is_valid_for_subject_name(&server_name))
        .is_ok()
}

/// Checks a server's certificate chain against the cluster CA, leaving its
/// name to the RPC handshake (a node is dialled by address, its name known
/// only once it answers).
#[derive(Debug)]
struct SignedByCa {
    roots: Arc<RootCertStore>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for SignedByCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A cluster CA and node certificates (`dynakv certs`), made with rcgen.
pub mod certs {
    use std::path::Path;

    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose, SanType,
    };

    fn write(path: &Path, text: &str, secret: bool) -> Result<(), String> {
        std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
        if secret {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(())
    }

    /// Makes a CA in `dir` (`ca.pem`, `ca.key`), refusing to overwrite one.
    pub fn init(dir: &Path, cluster: &str) -> Result<(), String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let (cert_path, key_path) = (dir.join("ca.pem"), dir.join("ca.key"));
        if cert_path.exists() || key_path.exists() {
            return Err(format!(
                "{} already holds a CA; remove it first to make another",
                dir.display()
            ));
        }
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
        params
            .distinguished_name
            .push(DnType::CommonName, format!("dynakv CA {cluster}"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_after = rcgen::date_time_ymd(2099, 1, 1);
        let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
        write(&cert_path, &cert.pem(), false)?;
        write(&key_path, &key.serialize_pem(), true)?;
        Ok(())
    }

    /// Makes `NAME.pem` and `NAME.key` in `dir`, signed by its CA, naming
    /// the node (DNS `name`) and `hosts` (IP addresses or DNS names).
    pub fn node(dir: &Path, name: &str, hosts: &[String]) -> Result<(), String> {
        let ca_key = std::fs::read_to_string(dir.join("ca.key")).map_err(|e| {
            format!(
                "{}: {e} (run `dynakv certs init` first)",
                dir.join("ca.key").display()
            )
        })?;
        let ca_cert = std::fs::read_to_string(dir.join("ca.pem"))
            .map_err(|e| format!("{}: {e}", dir.join("ca.pem").display()))?;
        let ca_key = KeyPair::from_pem(&ca_key).map_err(|e| format!("ca.key: {e}"))?;
        let issuer =
            Issuer::from_ca_cert_pem(&ca_cert, ca_key).map_err(|e| format!("ca.pem: {e}"))?;
        if rustls::pki_types::ServerName::try_from(name).is_err()
            || name.parse::<std::net::IpAddr>().is_ok()
        {
            return Err(format!(
                "{name:?} cannot be a certificate's DNS name: with TLS, node names are DNS labels (letters, digits, - and .)"
            ));
        }
        let mut sans = vec![SanType::DnsName(
            name.try_into().map_err(|e| format!("{name}: {e}"))?,
        )];
        for h in hosts {
            match h.parse::<std::net::IpAddr>() {
                Ok(ip) => sans.push(SanType::IpAddress(ip)),
                Err(_) => sans.push(SanType::DnsName(
                    h.as_str().try_into().map_err(|e| format!("{h}: {e}"))?,
                )),
            }
        }
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.subject_alt_names = sans;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_after = rcgen::date_time_ymd(2099, 1, 1);
        let cert = params.signed_by(&key, &issuer).map_err(|e| e.to_string())?;
        write(&dir.join(format!("{name}.pem")), &cert.pem(), false)?;
        write(&dir.join(format!("{name}.key")), &key.serialize_pem(), true)?;
        Ok(())
    }
}
