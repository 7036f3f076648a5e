//! odseed, the controller: watches a torrent's swarm and engages helper seeders while it needs them.
//!
//! One loop ([`rounds`]) serves `run` (one torrent) and `watch` (a [`catalogue`]): observe
//! ([`observe`], [`tracker`]) -> decide ([`policy`], pure) -> share out ([`allocate`], pure) -> act
//! ([`helpers`], recorded in the [`ledger`]); [`guard`] releases everything on the way out.
//! [`main`](../odseed/index.html) maps outcomes to exit codes. [`provision`] makes EC2 helpers from
//! nothing (`odseed ec2 provision`); [`stage`] puts a torrent on helpers before a crowd comes.
#![deny(unsafe_code)]

pub mod allocate;
pub mod budget;
pub mod catalogue;
pub mod cli;
pub mod config;
pub mod ec2;
pub mod error;
pub mod guard;
pub mod helpers;
pub mod lab;
pub mod ledger;
pub mod observe;
pub mod output;
pub mod pace;
pub mod policy;
pub mod price;
pub mod provision;
pub mod publisher;
pub mod release;
pub mod rounds;
pub mod run;
pub mod settings;
pub mod stage;
pub mod status;
pub mod target;
pub mod textfile;
pub mod tracker;
pub mod watch;
pub mod xdg;
