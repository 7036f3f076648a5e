//! The EC2 client against a real moto server: pagination, filters, start and stop, AWS's errors.

use crate::world;
use odseed::ec2::credentials::{Credentials, Provider};
use odseed::ec2::{Ec2, Error};
use odseed_lab::testing::Moto;
use std::time::Duration;

pub fn credentials() -> std::sync::Arc<Provider> {
    Provider::fixed(Credentials::new("AKIDODSEEDTEST", "not-a-real-secret"))
}

pub fn client(moto: &Moto, region: &str) -> Ec2 {
    Ec2::new(region, &moto.url(), credentials(), Duration::from_secs(10))
}

/// Runs `n` instances (one reservation each) with `tags`, then stops them; their ids.
pub fn make_instances(ec2: &Ec2, n: usize, tags: &[(&str, &str)]) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let mut p: Vec<(String, String)> =
            [("ImageId", "ami-12c6146b"), ("MinCount", "1"), ("MaxCount", "1"), ("InstanceType", "t3.micro")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        if !tags.is_empty() {
            p.push(("TagSpecification.1.ResourceType".into(), "instance".into()));
            for (i, (k, v)) in tags.iter().enumerate() {
                p.push((format!("TagSpecification.1.Tag.{}.Key", i + 1), k.to_string()));
                p.push((format!("TagSpecification.1.Tag.{}.Value", i + 1), v.to_string()));
            }
        }
        let xml = ec2.call("RunInstances", &p).expect("RunInstances");
        ids.extend(odseed::ec2::xml::changes(&xml).expect("RunInstances answer").into_iter().map(|i| i.id));
    }
    ec2.stop(&ids).expect("StopInstances");
    ids
}

/// Each instance's state, as moto tells it.
pub fn states(ec2: &Ec2, ids: &[String]) -> Vec<String> {
    let all = ec2.describe(&[]).expect("DescribeInstances");
    ids.iter().map(|id| all.iter().find(|i| &i.id == id).map(|i| i.state.to_string()).unwrap_or_default()).collect()
}

#[test]
fn describe_pages_filters_by_tag_and_state_then_start_and_stop() {
    let w = world("ec2api");
    let moto = Moto::start(&w.dir.path().join("moto")).unwrap();
    let mut ec2 = client(&moto, "eu-west-3");
    ec2.page_size = 5;
    let helpers = make_instances(&ec2, 12, &[("odseed:role", "helper"), ("odseed:agent-url", "http://10.0.0.1:5050")]);
    let other = make_instances(&ec2, 1, &[("odseed:role", "builder")]);
    let untagged = make_instances(&ec2, 1, &[]);

    let first = ec2.call("DescribeInstances", &[("MaxResults".into(), "5".into())]).unwrap();
    let first = odseed::ec2::xml::describe(&first).unwrap();
    assert!(first.instances.len() <= 5 && first.next_token.is_some(), "moto pages: {first:?}");
    let found = ec2.describe(&[("tag:odseed:role", &["helper"]), ("instance-state-name", &["stopped"])]).unwrap();
    let mut ids: Vec<String> = found.iter().map(|i| i.id.clone()).collect();
    ids.sort();
    let mut want = helpers.clone();
    want.sort();
    assert_eq!(ids, want, "12 tagged instances over 3 pages of 5, and nothing else");
    assert_eq!(found[0].tag("odseed:agent-url"), Some("http://10.0.0.1:5050"));

    let started = ec2.start(&helpers[..2]).unwrap();
    assert_eq!(started.len(), 2);
    assert!(started.iter().all(|i| i.state.as_str() == "pending" || i.state.as_str() == "running"), "{started:?}");
    let running = ec2.describe(&[("tag:odseed:role", &["helper"]), ("instance-state-name", &["running"])]).unwrap();
    assert_eq!(running.len(), 2);
    ec2.stop(&helpers[..2]).unwrap();
    assert!(states(&ec2, &helpers).iter().all(|s| s == "stopped" || s == "stopping"));
    assert_eq!(states(&ec2, &other), ["stopped"]);
    assert_eq!(states(&ec2, &untagged), ["stopped"]);
    assert!(client(&moto, "us-east-1").describe(&[]).unwrap().is_empty(), "regions are apart");

    match ec2.start(&["i-0123456789abcdef0".to_string()]) {
        Err(Error::Aws { code, message, .. }) => {
            assert_eq!(code, "InvalidInstanceID.NotFound");
            assert!(message.contains("i-0123456789abcdef0"), "{message}");
        }
        other => panic!("an unknown instance: {other:?}"),
    }
}
