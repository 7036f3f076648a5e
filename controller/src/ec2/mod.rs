//! EC2, spoken to over its Query API: the client, its XML, and where credentials and endpoints come from.

pub mod client;
pub mod credentials;
pub mod xml;

pub use client::{Ec2, Error, StartFailure};
pub use xml::{Instance, InstanceState};
