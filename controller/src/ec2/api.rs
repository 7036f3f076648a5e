//! The narrow view helpers have of EC2 ([`Api`]: the three calls that find, start and stop
//! instances). The real one is [`Ec2`], EC2's Query API; the unit tests of the pool and the loop
//! give a fake that keeps its instances in memory.

use super::{Ec2, Error, Instance, StartFailure};

/// One region's EC2, as helpers use it.
pub trait Api: Send + Sync {
    fn region(&self) -> &str;
    /// Where it is reached (kept in the ledger, for `odseed release`).
    fn endpoint(&self) -> &str;
    /// DescribeInstances with these filters, every page.
    fn describe(&self, filters: &[(&str, &[&str])]) -> Result<Vec<Instance>, Error>;
    /// StartInstances, saying whether they may have started when it fails.
    fn start_checked(&self, ids: &[String]) -> Result<Vec<Instance>, StartFailure>;
    /// StopInstances.
    fn stop(&self, ids: &[String]) -> Result<Vec<Instance>, Error>;
}

impl Api for Ec2 {
    fn region(&self) -> &str {
        &self.region
    }
    fn endpoint(&self) -> &str {
        &self.endpoint
    }
    fn describe(&self, filters: &[(&str, &[&str])]) -> Result<Vec<Instance>, Error> {
        Ec2::describe(self, filters)
    }
    fn start_checked(&self, ids: &[String]) -> Result<Vec<Instance>, StartFailure> {
        Ec2::start_checked(self, ids)
    }
    fn stop(&self, ids: &[String]) -> Result<Vec<Instance>, Error> {
        Ec2::stop(self, ids)
    }
}
