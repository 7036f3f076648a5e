//! How a loop ends ([`End`]), the signal that can end it ([`Signal`]), and what releases every
//! helper on the way out ([`Guard`]): [`Guard::release`] on the normal way out, its drop on any
//! other. A panic aborts release builds, so main's panic hook releases from the ledger instead; a
//! kill -9 leaves the ledger, which the next run or `odseed release` acts on.

use crate::budget::Totals;
use crate::catalogue::Item;
use crate::helpers::ec2::Fleet;
use crate::helpers::Pool;
use crate::ledger::{Ledger, Owner};
use crate::output::Printer;
use crate::policy::ExitReason;
use odseed_proto::InfoHash;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How a run or a watch ended.
pub enum End {
    Normal(ExitReason),
    Interrupted,
}

impl End {
    pub fn as_str(&self) -> &'static str {
        match self {
            End::Normal(r) => r.as_str(),
            End::Interrupted => "interrupted",
        }
    }
}

/// SIGINT or SIGTERM, as a message from main's signal thread; once seen (say while instances
/// boot), remembered.
pub struct Signal<'a> {
    stop: &'a mpsc::Receiver<()>,
    seen: Cell<bool>,
}

impl<'a> Signal<'a> {
    pub fn new(stop: &'a mpsc::Receiver<()>) -> Signal<'a> {
        Signal { stop, seen: Cell::new(false) }
    }

    pub fn seen(&self) -> bool {
        if !self.seen.get() && self.stop.try_recv().is_ok() {
            self.seen.set(true);
        }
        self.seen.get()
    }
}

/// One torrent being helped: its pool (the helpers engaged for it) and when that last changed.
pub struct Helped {
    pub pool: Pool,
    pub item: Item,
    pub last_change: Instant,
}

/// The fleet and every torrent's helpers; releases them all when the loop ends.
pub struct Guard<'a> {
    pub fleet: Fleet,
    pub helped: BTreeMap<InfoHash, Helped>,
    pub printer: &'a Printer,
    pub ledger: &'a Ledger,
    /// Whether helper events name their torrent (`watch`) or not (`run`, which has one).
    pub per_torrent: bool,
    released: bool,
}

impl<'a> Guard<'a> {
    pub fn new(fleet: Fleet, printer: &'a Printer, ledger: &'a Ledger, per_torrent: bool) -> Guard<'a> {
        Guard { fleet, helped: BTreeMap::new(), printer, ledger, per_torrent, released: false }
    }

    /// Releases everything now, once (the drop that follows does nothing), stops again what could
    /// not be stopped, and prints the instance time used.
    pub fn release(&mut self) {
        if std::mem::replace(&mut self.released, true) {
            return;
        }
        let helped = std::mem::take(&mut self.helped);
        for mut h in helped.into_values() {
            for e in h.pool.release_all(&mut self.fleet) {
                self.printer.helper(&e, &h.item, self.per_torrent);
            }
        }
        for e in self.fleet.stop_stranded(self.ledger, &Owner::me()) {
            self.printer.event(&e);
        }
        self.printer.bills(&self.fleet.bills);
        self.printer.usage(&self.fleet.usage);
    }

    /// What this process has used in all: the instances it stopped, runs, and could not stop.
    pub fn totals(&self) -> Totals {
        let fleet = &self.fleet;
        let running = self.helped.values().flat_map(|h| h.pool.bills(fleet));
        let stranded = fleet.stranded.iter().map(|s| fleet.bill(s));
        let mut t = Totals { time: fleet.usage.values().sum(), ..Totals::default() };
        t.time += self.helped.values().map(|h| h.pool.running_time()).sum::<Duration>() + fleet.stranded_time();
        for b in fleet.bills.iter().cloned().chain(running).chain(stranded) {
            t.dollars += b.dollars - b.egress;
            t.egress_dollars += b.egress;
            t.bytes_out += b.used.bytes_out;
            // An instance stopped and started again by this process has a bill for each time.
            let i = t.instances.entry(b.id).or_default();
            i.region = b.region;
            i.seconds += b.used.seconds;
            i.bytes_out += b.used.bytes_out;
            i.dollars += b.dollars;
        }
        t
    }

    /// The instances that could not be stopped.
    pub fn stranded(&self) -> Vec<String> {
        self.fleet.stranded.iter().map(|s| s.id.clone()).collect()
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.release();
    }
}
