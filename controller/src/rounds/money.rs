//! What a loop spends on EC2: each round, the instance time and dollars it used (instance time,
//! public addresses, bytes out, at the pools' prices) are added to the month's budget; the
//! allocation gets no instance once a limit is spent, or when the dollars spent at the last
//! round's rate would cross the month's before the next round (so a run goes over by at most one
//! round's spending). Boards cost nothing and are never stopped for money.

use super::Loop;
use crate::budget::Standing;
use crate::helpers::Event;
use crate::output::Money;

impl Loop<'_> {
    /// Adds what was used since the last count to the month's budget; where it stands (`None` if
    /// not counted, or its file cannot be used: said once).
    pub(super) fn count_usage(&mut self) -> Option<Standing> {
        let budget = self.budget?;
        let totals = self.guard.totals();
        match self.meter.tick(budget, totals) {
            Ok(s) => {
                self.warned.budget_file = false;
                Some(s)
            }
            Err(e) => {
                if !std::mem::replace(&mut self.warned.budget_file, true) {
                    self.printer.event(&Event::Fault(e.to_string()));
                }
                None
            }
        }
    }

    /// This run's dollars and the month's, for the round's line (`None` without EC2).
    pub(super) fn money(&self, standing: Option<&Standing>) -> Option<Money> {
        if self.guard.fleet.pools.is_empty() {
            return None;
        }
        let t = self.guard.totals();
        Some(Money {
            run: t.dollars + t.egress_dollars,
            month: standing.map(|s| s.dollars),
            limit: standing.and_then(|s| s.dollars_limit),
        })
    }

    /// The instances the allocation may use: `max_instances` less those that could not be
    /// stopped, and none once the month's budget is spent or about to be (said once a month).
    pub(super) fn max_instances(&mut self, standing: Option<&Standing>) -> u32 {
        let fleet = &self.guard.fleet;
        if fleet.pools.is_empty() {
            return 0;
        }
        let max = fleet.max_instances.saturating_sub(fleet.stranded.len() as u32);
        let Some(s) = standing else {
            // The budget file could not be read or written: no instance may be started uncounted.
            return if self.budget.is_some_and(|b| b.limited()) { 0 } else { max };
        };
        let why = if s.spent() {
            format!(
                "the EC2 budget for {} is spent ({:.1} instance-hours, ${:.2} used): no instance until next month",
                s.month,
                s.used.as_secs_f64() / 3600.0,
                s.dollars
            )
        } else if let Some(projected) = self.crossing(s) {
            format!(
                "the EC2 budget for {} would be crossed before the next round (${:.2} spent, ${projected:.2} then, of \
                 ${:.2}): instances are stopped now",
                s.month,
                s.dollars,
                s.dollars_limit.unwrap_or_default()
            )
        } else {
            return max;
        };
        if self.warned.budget.as_deref() != Some(s.month.as_str()) {
            log::warn!("{why}");
            self.warned.budget = Some(s.month.clone());
        }
        0
    }

    /// The month's dollars at the next round, at the rate last measured while money was spent (by
    /// any process this month), if that crosses its limit: so once instances are stopped for
    /// money, none is started again to spend at that rate.
    fn crossing(&self, s: &Standing) -> Option<f64> {
        let projected = s.dollars + s.rate * self.o.interval.as_secs_f64();
        s.dollars_limit.filter(|l| projected >= *l).map(|_| projected)
    }
}
