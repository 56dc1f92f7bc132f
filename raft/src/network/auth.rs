//! Mutual authentication of a cluster connection by challenge and response: each side
//! proves it knows the cluster secret with an HMAC-SHA256 over the other side's nonce and
//! the cluster name, so the secret never crosses the wire and a replayed proof is useless.
//! (There is no encryption: run the cluster port on a private network.)
//!
//! The server's welcome also says which node it is, with its own proof, after the verdict
//! in the same frame (older clients stop reading at the verdict): a client that expects
//! a certain node at an address can tell when another node answers there, such as a new
//! node started on a lost member's address, which must not stand in for it.

use hmac::{Hmac, Mac};
use rand::RngExt;
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::net::TcpStream;

use super::frame;
use crate::codec;

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

/// What follows a welcome: the server's node id, and its proof over the client's nonce.
#[derive(Serialize, Deserialize)]
struct ServerId {
    node_id: u64,
    proof: Vec<u8>,
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

/// The MAC every proof is: over the role, the cluster's name, the other side's nonce, and
/// what the proof vouches for beyond them (the server's node id; nothing for the others).
fn keyed(secret: &[u8], role: &[u8], cluster: &str, nonce: &[u8; 32], vouched: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(role);
    mac.update(cluster.as_bytes());
    mac.update(nonce);
    mac.update(vouched);
    mac
}

fn proof(secret: &[u8], role: &[u8], cluster: &str, nonce: &[u8; 32]) -> Vec<u8> {
    keyed(secret, role, cluster, nonce, &[]).finalize().into_bytes().to_vec()
}

fn verify(secret: &[u8], role: &[u8], cluster: &str, nonce: &[u8; 32], given: &[u8]) -> bool {
    keyed(secret, role, cluster, nonce, &[]).verify_slice(given).is_ok()
}

fn id_proof(secret: &[u8], cluster: &str, nonce: &[u8; 32], node_id: u64) -> Vec<u8> {
    keyed(secret, b"server-id", cluster, nonce, &node_id.to_be_bytes()).finalize().into_bytes().to_vec()
}

fn verify_id(secret: &[u8], cluster: &str, nonce: &[u8; 32], node_id: u64, given: &[u8]) -> bool {
    keyed(secret, b"server-id", cluster, nonce, &node_id.to_be_bytes()).verify_slice(given).is_ok()
}

/// The connecting side. On success the peer has proven it knows the secret; the node id
/// it proved it is, unless it is of a build that does not say.
pub async fn client(stream: &mut TcpStream, creds: &Credentials) -> Result<Option<u64>, HandshakeError> {
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
    let payload = frame::read_payload(stream).await?;
    let bad_data = |e| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let (verdict, used) = codec::decode_prefix::<Verdict>(&payload).map_err(bad_data)?;
    match verdict {
        Verdict::Welcome { proof } if verify(&creds.secret, b"server", &creds.cluster, &nonce, &proof) => {
            if used == payload.len() {
                return Ok(None);
            }
            let said: ServerId = codec::decode(&payload[used..]).map_err(bad_data)?;
            if !verify_id(&creds.secret, &creds.cluster, &nonce, said.node_id, &said.proof) {
                return Err(HandshakeError::BadSecret("the peer could not prove which node it is".into()));
            }
            Ok(Some(said.node_id))
        }
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
    let mut payload = codec::encode(&Verdict::Welcome { proof }).map_err(std::io::Error::other)?;
    let said = ServerId { node_id: creds.node_id, proof: id_proof(&creds.secret, &creds.cluster, &hello.nonce, creds.node_id) };
    payload.extend(codec::encode(&said).map_err(std::io::Error::other)?);
    frame::write_payload(stream, &payload).await?;
    Ok(hello.node_id)
}

#[cfg(test)]
mod tests {
    use tokio::net::TcpListener;

    use super::*;

    fn creds(node_id: u64) -> Credentials {
        Credentials { cluster: "c".into(), secret: b"s".to_vec(), node_id }
    }

    /// Runs `serve` on one end of a fresh connection and the client on the other.
    async fn handshake<F, Fut>(serve: F) -> Result<Option<u64>, HandshakeError>
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move { serve(listener.accept().await.unwrap().0).await });
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let result = client(&mut stream, &creds(1)).await;
        server.await.unwrap();
        result
    }

    #[tokio::test]
    async fn the_server_proves_which_node_it_is() {
        let said = handshake(|mut s| async move { server(&mut s, &creds(7)).await.unwrap(); }).await;
        assert_eq!(said.unwrap(), Some(7));
    }

    /// A server of a build that does not say which node it is: welcome, and no id.
    #[tokio::test]
    async fn a_server_that_does_not_say_is_still_welcome() {
        let said = handshake(|mut s| async move {
            let nonce = [3u8; 32];
            frame::write(&mut s, &Challenge { cluster: "c".into(), nonce }).await.unwrap();
            let hello: Hello = frame::read(&mut s).await.unwrap();
            let proof = proof(b"s", b"server", "c", &hello.nonce);
            frame::write(&mut s, &Verdict::Welcome { proof }).await.unwrap();
        })
        .await;
        assert_eq!(said.unwrap(), None);
    }

    /// An id whose proof is for another id (a relay that rewrote it) is refused.
    #[tokio::test]
    async fn an_id_without_its_proof_is_refused() {
        let said = handshake(|mut s| async move {
            let nonce = [3u8; 32];
            frame::write(&mut s, &Challenge { cluster: "c".into(), nonce }).await.unwrap();
            let hello: Hello = frame::read(&mut s).await.unwrap();
            let mut payload = codec::encode(&Verdict::Welcome { proof: proof(b"s", b"server", "c", &hello.nonce) }).unwrap();
            payload.extend(codec::encode(&ServerId { node_id: 8, proof: id_proof(b"s", "c", &hello.nonce, 7) }).unwrap());
            frame::write_payload(&mut s, &payload).await.unwrap();
        })
        .await;
        assert!(matches!(said, Err(HandshakeError::BadSecret(_))), "{said:?}");
    }
}
