//! EC2's XML answers (API version 2016-11-15), only the fields odseed reads.

use serde::Deserialize;

/// One instance, as DescribeInstances, RunInstances, StartInstances and StopInstances tell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    pub state: InstanceState,
    pub public_ip: Option<String>,
    /// "t4g.small"; absent from StartInstances' and StopInstances' answers.
    pub instance_type: Option<String>,
    pub tags: Vec<(String, String)>,
}

impl Instance {
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// An instance's lifecycle state, as EC2 names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceState {
    Pending,
    Running,
    ShuttingDown,
    Terminated,
    Stopping,
    Stopped,
    /// A name this version does not know, kept to be shown.
    Other(String),
}

impl InstanceState {
    fn from_name(name: String) -> InstanceState {
        match name.as_str() {
            "pending" => InstanceState::Pending,
            "running" => InstanceState::Running,
            "shutting-down" => InstanceState::ShuttingDown,
            "terminated" => InstanceState::Terminated,
            "stopping" => InstanceState::Stopping,
            "stopped" => InstanceState::Stopped,
            _ => InstanceState::Other(name),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Running => "running",
            InstanceState::ShuttingDown => "shutting-down",
            InstanceState::Terminated => "terminated",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
            InstanceState::Other(name) => name,
        }
    }

    /// Stopping or stopped, or on its way out for good: it runs no more (or soon no more).
    pub fn is_down(&self) -> bool {
        matches!(
            self,
            InstanceState::Stopping | InstanceState::Stopped | InstanceState::ShuttingDown | InstanceState::Terminated
        )
    }
}

impl std::fmt::Display for InstanceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A page of DescribeInstances: its instances and the token of the next page.
#[derive(Debug)]
pub struct Page {
    pub instances: Vec<Instance>,
    pub next_token: Option<String>,
}

/// EC2's `<xSet><item>...</item></xSet>` lists.
#[derive(Deserialize)]
pub(super) struct Set<T> {
    #[serde(rename = "item", default = "Vec::new")]
    pub(super) items: Vec<T>,
}

impl<T> Default for Set<T> {
    fn default() -> Self {
        Set { items: Vec::new() }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Describe {
    #[serde(default)]
    reservation_set: Set<Reservation>,
    next_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Reservation {
    #[serde(default)]
    instances_set: Set<RawInstance>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawInstance {
    instance_id: String,
    /// DescribeInstances and RunInstances.
    instance_state: Option<State>,
    /// StartInstances and StopInstances.
    current_state: Option<State>,
    ip_address: Option<String>,
    instance_type: Option<String>,
    #[serde(default)]
    tag_set: Set<Tag>,
}

#[derive(Deserialize)]
struct State {
    name: String,
}

#[derive(Deserialize)]
struct Tag {
    key: String,
    #[serde(default)]
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Changes {
    #[serde(default)]
    instances_set: Set<RawInstance>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorResponse {
    errors: Errors,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Errors {
    error: Vec<ErrorItem>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorItem {
    code: String,
    #[serde(default)]
    message: String,
}

impl RawInstance {
    fn cook(self) -> Result<Instance, String> {
        let state =
            self.instance_state.or(self.current_state).ok_or_else(|| format!("{} has no state", self.instance_id))?;
        Ok(Instance {
            id: self.instance_id,
            state: InstanceState::from_name(state.name),
            public_ip: self.ip_address.filter(|ip| !ip.is_empty()),
            instance_type: self.instance_type.filter(|t| !t.is_empty() && t.len() <= 64),
            tags: self.tag_set.items.into_iter().map(|t| (t.key, t.value)).collect(),
        })
    }
}

fn de<'a, T: Deserialize<'a>>(xml: &'a str) -> Result<T, String> {
    quick_xml::de::from_str(xml).map_err(|e| format!("unreadable XML ({e})"))
}

/// A DescribeInstancesResponse.
pub fn describe(xml: &str) -> Result<Page, String> {
    let d: Describe = de(xml)?;
    let instances = d.reservation_set.items.into_iter().flat_map(|r| r.instances_set.items).map(RawInstance::cook);
    Ok(Page { instances: instances.collect::<Result<_, _>>()?, next_token: d.next_token.filter(|t| !t.is_empty()) })
}

/// A StartInstancesResponse, StopInstancesResponse or RunInstancesResponse: each instance's new state.
pub fn changes(xml: &str) -> Result<Vec<Instance>, String> {
    let c: Changes = de(xml)?;
    c.instances_set.items.into_iter().map(RawInstance::cook).collect()
}

/// The first (code, message) of an EC2 error response, if `xml` is one.
pub fn error(xml: &str) -> Option<(String, String)> {
    let r: ErrorResponse = quick_xml::de::from_str(xml).ok()?;
    r.errors.error.into_iter().next().map(|e| (e.code, e.message))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DESCRIBE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>8f7724cf-496f-496e-8fe3-example</requestId>
  <reservationSet>
    <item>
      <reservationId>r-1234567890abcdef0</reservationId>
      <groupSet/>
      <instancesSet>
        <item>
          <instanceId>i-1</instanceId>
          <imageId>ami-x</imageId>
          <instanceState><code>16</code><name>running</name></instanceState>
          <instanceType>t4g.small</instanceType>
          <ipAddress>54.194.252.215</ipAddress>
          <tagSet>
            <item><key>odseed:role</key><value>helper</value></item>
            <item><key>empty</key><value/></item>
          </tagSet>
        </item>
        <item>
          <instanceId>i-2</instanceId>
          <instanceState><code>80</code><name>stopped</name></instanceState>
        </item>
      </instancesSet>
    </item>
  </reservationSet>
  <nextToken>page2</nextToken>
</DescribeInstancesResponse>"#;

    #[test]
    fn describe_reads_instances_states_ips_tags_and_the_next_token() {
        let p = describe(DESCRIBE).unwrap();
        assert_eq!(p.next_token.as_deref(), Some("page2"));
        assert_eq!(p.instances.len(), 2);
        let a = &p.instances[0];
        assert_eq!(
            (a.id.as_str(), &a.state, a.public_ip.as_deref()),
            ("i-1", &InstanceState::Running, Some("54.194.252.215"))
        );
        assert_eq!(a.tag("odseed:role"), Some("helper"));
        assert_eq!((a.instance_type.as_deref(), p.instances[1].instance_type.as_deref()), (Some("t4g.small"), None));
        assert_eq!(a.tag("empty"), Some(""));
        assert_eq!((&p.instances[1].state, p.instances[1].public_ip.as_deref()), (&InstanceState::Stopped, None));
        let empty = describe("<DescribeInstancesResponse><reservationSet/></DescribeInstancesResponse>").unwrap();
        assert!(empty.instances.is_empty() && empty.next_token.is_none());
    }

    #[test]
    fn state_changes_and_errors() {
        let xml = "<StopInstancesResponse><instancesSet><item><instanceId>i-1</instanceId><currentState><code>64</code><name>stopping</name></currentState><previousState><code>16</code><name>running</name></previousState></item></instancesSet></StopInstancesResponse>";
        let c = changes(xml).unwrap();
        assert_eq!((c[0].id.as_str(), &c[0].state), ("i-1", &InstanceState::Stopping));
        let err = "<Response><Errors><Error><Code>InsufficientInstanceCapacity</Code><Message>No capacity.</Message></Error></Errors><RequestID>x</RequestID></Response>";
        assert_eq!(error(err), Some(("InsufficientInstanceCapacity".into(), "No capacity.".into())));
        assert_eq!(error(xml), None);
        for bad in ["", "<html>", "<DescribeInstancesResponse><reservationSet><item><instancesSet><item><instanceId>i-1</instanceId></item></instancesSet></item></reservationSet></DescribeInstancesResponse>"] {
            assert!(describe(bad).is_err(), "{bad}");
        }
    }
}
