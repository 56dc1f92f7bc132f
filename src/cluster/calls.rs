//! The cluster port's calls for the layer above, by method name: one handler slot in the
//! store, many kinds of call (joins, an operator's target health).

use std::collections::HashMap;
use std::sync::Arc;

use gatehouse_raft::{AppFuture, AppHandler};

#[derive(Default)]
pub struct ClusterCalls {
    handlers: HashMap<&'static str, Arc<dyn AppHandler>>,
}

impl ClusterCalls {
    pub fn with(mut self, method: &'static str, handler: Arc<dyn AppHandler>) -> Self {
        self.handlers.insert(method, handler);
        self
    }
}

impl AppHandler for ClusterCalls {
    fn call(&self, peer: u64, method: String, body: Vec<u8>) -> AppFuture {
        match self.handlers.get(method.as_str()) {
            Some(handler) => handler.call(peer, method, body),
            // A newer node's call this one does not know: say so, rather than guess.
            None => Box::pin(async move { Err(format!("unknown cluster call {method:?}")) }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Echo(&'static str);

    impl AppHandler for Echo {
        fn call(&self, peer: u64, method: String, body: Vec<u8>) -> AppFuture {
            let name = self.0;
            Box::pin(async move { Ok(format!("{name} {peer} {method} {}", String::from_utf8_lossy(&body)).into_bytes()) })
        }
    }

    #[tokio::test]
    async fn each_method_reaches_its_handler_and_others_are_refused() {
        let calls = ClusterCalls::default().with("join", Arc::new(Echo("j"))).with("health", Arc::new(Echo("h")));
        assert_eq!(calls.call(7, "join".into(), b"x".to_vec()).await.unwrap(), b"j 7 join x");
        assert_eq!(calls.call(7, "health".into(), b"y".to_vec()).await.unwrap(), b"h 7 health y");
        assert_eq!(calls.call(7, "nope".into(), Vec::new()).await.unwrap_err(), "unknown cluster call \"nope\"");
    }
}
