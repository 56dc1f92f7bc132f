//! Mutual authentication of a cluster connection by challenge and response: each side
//! proves it knows the cluster secret with an HMAC-SHA256 over the other side's nonce and
//! the cluster name, so the secret never crosses the wire and a replayed proof is useless.
//! (There is no encryption: run the cluster port on a private network.)

use hmac::{Hmac, Mac};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::net::TcpStream;

use super::frame;

type HmacSha256 = Hmac<Sha256>;

/// The cluster's name and shared secret, as both ends of every connection must know them.
#[derive(Clone)]
pub struct Credentials {
    pub cluster: String,
    pub secret: Vec<u8>,
    pub node_id: u64,
}

#[derive(Serialize, Deserialize)]
struct Challenge {
    cluster: String,
    nonce: [u8; 32],
}

#[derive(Serialize, Deserialize)]
struct Hello {
    cluster: String,
    node_id: u64,
    proof: Vec<u8>,
    nonce: [u8; 32],
}

#[derive(Serialize, Deserialize)]
enum Verdict {
    Welcome { proof: Vec<u8> },
    Refused { reason: String },
}

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The peer belongs to another cluster: check `--cluster-name` on both nodes.
    #[error("cluster name mismatch: this node is in {ours:?}, the peer in {theirs:?}")]
    WrongCluster { ours: String, theirs: String },
    /// The peer does not know our secret (or we do not know its): check `--cluster-secret`.
    #[error("cluster secret mismatch: {0}")]
    BadSecret(String),
    /// The connection broke or the peer spoke something else.
    #[error("handshake i/o: {0}")]
    Io(#[from] std::io::Error),
}

fn proof(secret: &[u8], role: &[u8], cluster: &str, nonce: &[u8; 32]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(role);
    mac.update(cluster.as_bytes());
    mac.update(nonce);
    mac.finalize().into_bytes().to_vec()
}

fn verify(secret: &[u8], role: &[u8], cluster: &str, nonce: &[u8; 32], given: &[u8]) -> bool {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(role);
    mac.update(cluster.as_bytes());
    mac.update(nonce);
    mac.verify_slice(given).is_ok()
}

/// The connecting side. On success the peer has proven it knows the secret.
pub async fn client(stream: &mut TcpStream, creds: &Credentials) -> Result<(), HandshakeError> {
    let challenge: Challenge = frame::read(stream).await?;
    if challenge.cluster != creds.cluster {
        return Err(HandshakeError::WrongCluster { ours: creds.cluster.clone(), theirs: challenge.cluster });
    }
    let nonce: [u8; 32] = rand::rng().random();
    let hello = Hello {
        cluster: creds.cluster.clone(),
        node_id: creds.node_id,
        proof: proof(&creds.secret, b"client", &creds.cluster, &challenge.nonce),
        nonce,
    };
    frame::write(stream, &hello).await?;
    match frame::read::<_, Verdict>(stream).await? {
        Verdict::Welcome { proof } if verify(&creds.secret, b"server", &creds.cluster, &nonce, &proof) => Ok(()),
        Verdict::Welcome { .. } => Err(HandshakeError::BadSecret("the peer could not prove it knows our secret".into())),
        Verdict::Refused { reason } if reason.starts_with("cluster name") => {
            Err(HandshakeError::WrongCluster { ours: creds.cluster.clone(), theirs: reason })
        }
        Verdict::Refused { reason } => Err(HandshakeError::BadSecret(format!("refused by the peer: {reason}"))),
    }
}

/// The accepting side. Returns the peer's node id once it has proven it knows the secret;
/// a refusal is also sent to the peer so that both ends can say why.
pub async fn server(stream: &mut TcpStream, creds: &Credentials) -> Result<u64, HandshakeError> {
    let nonce: [u8; 32] = rand::rng().random();
    frame::write(stream, &Challenge { cluster: creds.cluster.clone(), nonce }).await?;
    let hello: Hello = frame::read(stream).await?;
    let refusal = if hello.cluster != creds.cluster {
        Some(HandshakeError::WrongCluster { ours: creds.cluster.clone(), theirs: hello.cluster.clone() })
    } else if !verify(&creds.secret, b"client", &creds.cluster, &nonce, &hello.proof) {
        Some(HandshakeError::BadSecret(format!("node {} sent a wrong proof", hello.node_id)))
    } else {
        None
    };
    if let Some(err) = refusal {
        let reason = match &err {
            HandshakeError::WrongCluster { ours, .. } => format!("cluster name mismatch: this node is in {ours:?}"),
            _ => "wrong cluster secret".to_string(),
        };
        // Best effort: the peer may already be gone.
        let _ = frame::write(stream, &Verdict::Refused { reason }).await;
        return Err(err);
    }
    let proof = proof(&creds.secret, b"server", &creds.cluster, &hello.nonce);
    frame::write(stream, &Verdict::Welcome { proof }).await?;
    Ok(hello.node_id)
}
