//! One node's share of one window's budget: the tokens it reserved through Raft and how
//! many it used. Pure accounting, no I/O: admission is a counter decrement, and the
//! bucket says when and how much to reserve next.

/// How big the next reservation should be. Large while much of the budget is left (few
/// Raft entries), shrinking to 1 as the window's budget runs out, so that no node sits
/// on tokens another node's clients could have used.
pub fn slice_size(limit: u64, cluster_granted: u64, live_nodes: u64) -> u64 {
    let remaining = limit.saturating_sub(cluster_granted);
    (remaining / (4 * live_nodes.max(1))).max(1).min(remaining.max(1))
}

/// A window's limit as configured: its count, and which configuration it comes from (the
/// plugin's store revision). A change is a new limit even back to an earlier count: a
/// node that missed 2 -> 16 -> 2 must not keep tokens it got under the first 2 while the
/// others spent under 16.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LimitSpec {
    pub count: u64,
    pub generation: u64,
}

impl From<u64> for LimitSpec {
    fn from(count: u64) -> Self {
        LimitSpec { count, generation: 0 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// A token was taken from the local slice.
    Admitted,
    /// The cluster-wide budget is spent for this window.
    Rejected,
    /// No local token: reserve more (or wait for the reservation in flight).
    NeedTokens,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bucket {
    pub limit: u64,
    /// `LimitSpec::generation` of `limit`.
    pub generation: u64,
    /// Tokens this node has been granted in this window.
    pub granted: u64,
    /// Tokens this node has used.
    pub used: u64,
    /// The cluster-wide total granted, as of the last grant this node saw.
    pub cluster_granted: u64,
    /// Of that total, other nodes' first slices not settled, as of the last grant.
    pub held_elsewhere: u64,
    /// A reservation is in flight.
    pub pending: bool,
    /// The store granted less than asked: the window's budget is gone.
    pub exhausted: bool,
    /// The store granted less than asked while other nodes' first slices of the window
    /// were held: they are recalled, and the next reservation waits for their answers.
    pub awaiting: bool,
}

impl Bucket {
    pub fn new(limit: impl Into<LimitSpec>) -> Bucket {
        let LimitSpec { count, generation } = limit.into();
        Bucket { limit: count, generation, ..Bucket::default() }
    }

    /// Whether tokens were granted here under `limit`, this very configuration.
    pub fn is_under(&self, limit: LimitSpec) -> bool {
        self.limit == limit.count && self.generation == limit.generation
    }

    pub fn local_tokens(&self) -> u64 {
        self.granted.saturating_sub(self.used)
    }

    /// Admissions made from the fallback share beyond this node's grants: the next
    /// reservation asks for them too, so the cluster's counter accounts for them.
    pub fn debt(&self) -> u64 {
        self.used.saturating_sub(self.granted)
    }

    pub fn try_admit(&mut self) -> Admission {
        if self.used < self.granted {
            self.used += 1;
            Admission::Admitted
        } else if self.exhausted {
            Admission::Rejected
        } else {
            Admission::NeedTokens
        }
    }

    /// The reservation a request that found no token needs, unless one is in flight or
    /// the budget is gone.
    pub fn refill(&self, live_nodes: u64) -> Option<u64> {
        (!self.pending && !self.exhausted && !self.awaiting && self.local_tokens() == 0).then(|| slice_size(self.limit, self.cluster_granted, live_nodes) + self.debt())
    }

    /// A reservation made ahead of need, after an admission, so that the common request
    /// never waits: only while slices are large. Prefetching small slices would leave
    /// tokens on nodes that may get no more requests this window, and the requests that
    /// come to the other nodes would be refused for want of them.
    pub fn prefetch(&self, live_nodes: u64) -> Option<u64> {
        if self.pending || self.exhausted || self.awaiting || self.debt() > 0 {
            return None;
        }
        let slice = slice_size(self.limit, self.cluster_granted, live_nodes);
        (slice >= 4 && self.local_tokens() <= slice / 2).then_some(slice)
    }

    /// Records what the store granted for a reservation of `want`. `held` of the
    /// cluster's total are other nodes' first slices not settled yet: a short grant then
    /// means they are recalled, not that the budget is gone.
    pub fn on_grant(&mut self, want: u64, granted: u64, cluster_total: u64, held: u64) {
        self.pending = false;
        self.granted += granted;
        self.cluster_granted = self.cluster_granted.max(cluster_total);
        self.held_elsewhere = held;
        if held > 0 && granted < want {
            self.awaiting = true;
        } else if held == 0 && (granted < want || cluster_total >= self.limit) {
            self.exhausted = true;
        }
    }

    /// First slices recalled for this window were settled (or the wait for them is
    /// over): reservations may be asked again.
    pub fn end_await(&mut self) {
        self.awaiting = false;
    }

    /// How many requests this node may admit in this window while reservations fail:
    /// what it was granted, plus an even part, among the live nodes, of what the cluster
    /// had not yet reserved when this node last heard. Early in a window that is
    /// limit / live nodes; once the window's budget is spent, nothing more. So an election
    /// in the middle of a window does not hand every node a fresh share of a budget that
    /// is already used.
    pub fn fallback_share(&self, live_nodes: u64) -> u64 {
        let live = live_nodes.max(1);
        let part = if self.cluster_granted == 0 {
            self.limit.div_ceil(live)
        } else {
            // Rounded down once part of the budget is spent, so that rounding on every
            // node cannot push the window over its limit.
            self.limit.saturating_sub(self.cluster_granted) / live
        };
        self.granted + part
    }

    /// Admission while reservations fail: up to the fallback share, counted in `used` so
    /// that the debt is reserved once they succeed again. Returns the tokens left.
    pub fn try_admit_fallback(&mut self, live_nodes: u64) -> Option<u64> {
        let share = self.fallback_share(live_nodes);
        (self.used < share).then(|| {
            self.used += 1;
            share - self.used
        })
    }

    /// Takes back an admission (normal or fallback) for a request another period then
    /// refused: its token is this node's to use again.
    pub fn refund(&mut self) {
        self.used = self.used.saturating_sub(1);
    }

    /// Gives up the tokens granted here and not used. They stay counted in the cluster's
    /// total: nobody else gets them, which errs toward admitting fewer.
    pub fn give_up_unused(&mut self) {
        self.granted = self.granted.min(self.used);
    }

    /// A limit changed in the middle of the window applies at once: tokens granted under
    /// the old one and not used are given up, so that a lowered limit admits nothing more
    /// here than the new one leaves, and whether the budget is spent is judged again
    /// (a raised limit may be reserved from once more).
    pub fn change_limit(&mut self, limit: impl Into<LimitSpec>) {
        let LimitSpec { count, generation } = limit.into();
        self.limit = count;
        self.generation = generation;
        self.give_up_unused();
        self.exhausted = self.cluster_granted >= count;
        self.awaiting = false;
    }

    /// A cluster total learned other than by a grant (this node's applied counter).
    pub fn observe_cluster_total(&mut self, total: u64) {
        self.cluster_granted = self.cluster_granted.max(total);
    }

    /// Estimated tokens left in the whole cluster for this window, as a client's
    /// remaining count (Kong's: the limit less what was used): what nobody has reserved
    /// yet, plus this node's unused slice, plus the first slices other nodes hold and have
    /// not said they used (most never are; each is recalled when needed), less what this
    /// node admitted on the fallback share and has not reserved yet. Counted as spent,
    /// held slices made a key that comes to one node report 0 left while it still admitted.
    /// (What the node may admit never depends on this.)
    pub fn remaining_estimate(&self) -> u64 {
        let spent = self.cluster_granted.saturating_sub(self.held_elsewhere);
        (self.limit.saturating_sub(spent).saturating_sub(self.debt()) + self.local_tokens()).min(self.limit)
    }
}

#[cfg(test)]
#[path = "bucket_tests.rs"]
mod tests;
