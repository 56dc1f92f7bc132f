//! The cluster-wide rate-limit budget: windows, per-node slices reserved through Raft,
//! batching of reservations, and the local fallback without quorum.

pub mod bucket;
pub mod calendar;
pub mod limiter;
pub mod local;
pub mod reserver;
pub mod slice_lease;
pub mod wall_clock;
pub mod window;
