//! The EC2 calls that make and unmake helpers (`odseed ec2 provision` and `deprovision`): the
//! newest official Debian image, the helpers' security group, RunInstances with user-data,
//! TerminateInstances, and an instance's console output.

use super::client::{Ec2, Error};
use super::xml::{self, Instance, Set};
use base64::Engine;
use serde::Deserialize;

/// The AWS account that publishes Debian's official images.
pub const DEBIAN_OWNER: &str = "136693071363";
/// The security group provision makes (or reuses) in a region's default VPC.
pub const GROUP_NAME: &str = "odseed-helper";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub id: String,
    pub name: String,
    pub created: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Images {
    #[serde(default)]
    images_set: Set<RawImage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawImage {
    image_id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    creation_date: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Groups {
    #[serde(default)]
    security_group_info: Set<RawGroup>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawGroup {
    group_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Created {
    group_id: String,
}

#[derive(Deserialize)]
struct Console {
    #[serde(default)]
    output: String,
}

fn de<'a, T: Deserialize<'a>>(action: &str, xml: &'a str) -> Result<T, Error> {
    quick_xml::de::from_str(xml).map_err(|e| Error::BadAnswer(format!("{action}: unreadable XML ({e})")))
}

/// The newest Debian 13 image for `arch` (`x86_64` or `arm64`) that Debian publishes.
pub fn debian_image(ec2: &Ec2, arch: &str) -> Result<Image, Error> {
    let name = match arch {
        "arm64" => "debian-13-arm64-*",
        _ => "debian-13-amd64-*",
    };
    let params = [
        ("Owner.1", DEBIAN_OWNER),
        ("Filter.1.Name", "name"),
        ("Filter.1.Value.1", name),
        ("Filter.2.Name", "architecture"),
        ("Filter.2.Value.1", arch),
        ("Filter.3.Name", "state"),
        ("Filter.3.Value.1", "available"),
    ];
    let xml = ec2.call("DescribeImages", &owned(&params))?;
    newest(de::<Images>("DescribeImages", &xml)?).ok_or_else(|| {
        Error::BadAnswer(format!(
            "no Debian 13 image ({name}, {arch}) by Debian's account {DEBIAN_OWNER} in {}; pass --ami",
            ec2.region
        ))
    })
}

fn newest(images: Images) -> Option<Image> {
    (images.images_set.items.into_iter())
        .map(|i| Image { id: i.image_id, name: i.name, created: i.creation_date })
        .max_by(|a, b| (&a.created, &a.name).cmp(&(&b.created, &b.name)))
}

/// The helpers' security group: found by name, or made, with the agent's port open to `allow_from`
/// and BitTorrent's (TCP and UDP) to anyone. Rules already there are kept.
pub fn security_group(ec2: &Ec2, agent_port: u16, peer_port: u16, allow_from: &str) -> Result<String, Error> {
    let found = ec2
        .call("DescribeSecurityGroups", &owned(&[("Filter.1.Name", "group-name"), ("Filter.1.Value.1", GROUP_NAME)]))?;
    let id = match de::<Groups>("DescribeSecurityGroups", &found)?.security_group_info.items.into_iter().next() {
        Some(g) => g.group_id,
        None => {
            let made = ec2.call(
                "CreateSecurityGroup",
                &owned(&[("GroupName", GROUP_NAME), ("GroupDescription", "odseed helpers: agent API and BitTorrent")]),
            )?;
            de::<Created>("CreateSecurityGroup", &made)?.group_id
        }
    };
    let rules = [("tcp", agent_port, allow_from), ("tcp", peer_port, "0.0.0.0/0"), ("udp", peer_port, "0.0.0.0/0")];
    for (proto, port, cidr) in rules {
        let port = port.to_string();
        let params = [
            ("GroupId", id.as_str()),
            ("IpPermissions.1.IpProtocol", proto),
            ("IpPermissions.1.FromPort", &port),
            ("IpPermissions.1.ToPort", &port),
            ("IpPermissions.1.IpRanges.1.CidrIp", cidr),
        ];
        match ec2.call("AuthorizeSecurityGroupIngress", &owned(&params)) {
            Err(Error::Aws { code, .. }) if code == "InvalidPermission.Duplicate" => {}
            other => drop(other?),
        }
    }
    Ok(id)
}

/// What RunInstances is asked for.
pub struct Launch<'a> {
    pub image: &'a str,
    pub instance_type: &'a str,
    pub count: u32,
    pub group: &'a str,
    pub user_data: &'a str,
    pub tags: &'a [(&'a str, &'a str)],
    /// Makes a retried RunInstances launch nothing twice.
    pub client_token: &'a str,
}

/// RunInstances: IMDSv2 required (the user-data holds secrets), stopped (not terminated) when the
/// instance powers itself off, tagged at launch.
pub fn run_instances(ec2: &Ec2, l: &Launch) -> Result<Vec<Instance>, Error> {
    let user_data = base64::engine::general_purpose::STANDARD.encode(l.user_data);
    let count = l.count.to_string();
    let mut params = owned(&[
        ("ImageId", l.image),
        ("InstanceType", l.instance_type),
        ("MinCount", &count),
        ("MaxCount", &count),
        ("SecurityGroupId.1", l.group),
        ("UserData", &user_data),
        ("InstanceInitiatedShutdownBehavior", "stop"),
        ("MetadataOptions.HttpTokens", "required"),
        ("MetadataOptions.HttpEndpoint", "enabled"),
        ("MetadataOptions.HttpPutResponseHopLimit", "1"),
        ("ClientToken", l.client_token),
        ("TagSpecification.1.ResourceType", "instance"),
    ]);
    for (i, (k, v)) in l.tags.iter().enumerate() {
        params.push((format!("TagSpecification.1.Tag.{}.Key", i + 1), k.to_string()));
        params.push((format!("TagSpecification.1.Tag.{}.Value", i + 1), v.to_string()));
    }
    let answer = ec2.call("RunInstances", &params)?;
    xml::changes(&answer).map_err(Error::BadAnswer)
}

pub fn terminate(ec2: &Ec2, ids: &[String]) -> Result<Vec<Instance>, Error> {
    let params: Vec<(String, String)> =
        ids.iter().enumerate().map(|(i, id)| (format!("InstanceId.{}", i + 1), id.clone())).collect();
    xml::changes(&ec2.call("TerminateInstances", &params)?).map_err(Error::BadAnswer)
}

/// Deletes the helpers' security group (one already gone is fine).
pub fn delete_security_group(ec2: &Ec2) -> Result<(), Error> {
    match ec2.call("DeleteSecurityGroup", &owned(&[("GroupName", GROUP_NAME)])) {
        Err(Error::Aws { code, .. }) if code == "InvalidGroup.NotFound" => Ok(()),
        other => other.map(drop),
    }
}

/// The last `lines` lines of an instance's console output (empty if EC2 has none yet).
pub fn console_tail(ec2: &Ec2, id: &str, lines: usize) -> Result<String, Error> {
    let xml = ec2.call("GetConsoleOutput", &owned(&[("InstanceId", id), ("Latest", "true")]))?;
    let raw = de::<Console>("GetConsoleOutput", &xml)?.output;
    let bytes = base64::engine::general_purpose::STANDARD.decode(raw.trim()).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let all: Vec<String> = text.lines().map(|l| odseed_proto::printable::printable_line(l, 300)).collect();
    Ok(all[all.len().saturating_sub(lines)..].join("\n"))
}

fn owned(params: &[(&str, &str)]) -> Vec<(String, String)> {
    params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_image_is_chosen() {
        let xml = r#"<DescribeImagesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>x</requestId><imagesSet>
            <item><imageId>ami-old</imageId><name>debian-13-amd64-20260101-1</name><creationDate>2026-01-01T00:00:00.000Z</creationDate><architecture>x86_64</architecture></item>
            <item><imageId>ami-new</imageId><name>debian-13-amd64-20261101-9</name><creationDate>2026-11-01T00:00:00.000Z</creationDate></item>
            <item><imageId>ami-mid</imageId><name>debian-13-amd64-20260601-5</name><creationDate>2026-06-01T00:00:00.000Z</creationDate></item>
        </imagesSet></DescribeImagesResponse>"#;
        assert_eq!(newest(de("DescribeImages", xml).unwrap()).map(|i| i.id), Some("ami-new".into()));
        let none = "<DescribeImagesResponse><imagesSet/></DescribeImagesResponse>";
        assert_eq!(newest(de("DescribeImages", none).unwrap()), None);
    }
}
