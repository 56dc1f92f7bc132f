//! gatehouse-gossip
