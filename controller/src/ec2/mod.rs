//! AWS: EC2 over its Query API (the client, its XML, the calls that set up helpers), S3 for the
//! agent binary that new instances fetch, SigV4, and where credentials and endpoints come from.

pub mod api;
pub mod client;
pub mod credentials;
pub mod s3;
pub mod setup;
pub mod sign;
pub mod xml;

pub use api::Api;
pub use client::{Ec2, Error, StartFailure};
pub use xml::{Instance, InstanceState};
