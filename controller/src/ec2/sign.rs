//! SigV4 for AWS requests, by AWS's own `aws-sigv4`: headers for EC2's Query API and S3's REST
//! requests, query parameters for an S3 presigned URL.

use super::credentials::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
    UriPathNormalizationMode,
};
use std::time::{Duration, SystemTime};

/// What to sign for.
pub enum Service {
    Ec2,
    S3,
    Sts,
}

/// The headers to add (`Signature::Headers`) or query parameters to append (a presigned URL) for
/// `method url` with `headers` and `body`, signed for `service` in `region`.
pub struct Signed {
    pub headers: Vec<(String, String)>,
    pub params: Vec<(String, String)>,
}

#[allow(clippy::too_many_arguments)]
pub fn sign_request(
    creds: &Credentials,
    region: &str,
    service: Service,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    presign_for: Option<Duration>,
) -> Result<Signed, String> {
    let identity = aws_credential_types::Credentials::new(
        &creds.access_key_id,
        &creds.secret_access_key,
        creds.session_token.clone(),
        None,
        "odseed",
    )
    .into();
    let mut settings = SigningSettings::default();
    let name = match service {
        Service::Ec2 => "ec2",
        Service::Sts => "sts",
        Service::S3 => {
            settings.percent_encoding_mode = PercentEncodingMode::Single;
            settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
            if presign_for.is_none() {
                settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
            }
            "s3"
        }
    };
    if let Some(expires) = presign_for {
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(expires);
    }
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(name)
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .map_err(|e| format!("cannot sign: {e}"))?
        .into();
    let body = match (body, presign_for) {
        (_, Some(_)) => SignableBody::UnsignedPayload,
        (Some(b), None) => SignableBody::Bytes(b),
        (None, None) => SignableBody::Bytes(&[]),
    };
    let request = SignableRequest::new(method, url, headers.iter().copied(), body)
        .map_err(|e| format!("cannot sign a request to {url}: {e}"))?;
    let (instructions, _) =
        sign(request, &params).map_err(|e| format!("cannot sign a request to {url}: {e}"))?.into_parts();
    let (headers, params) = instructions.into_parts();
    Ok(Signed {
        headers: headers.iter().map(|h| (h.name().to_string(), h.value().to_string())).collect(),
        params: params.into_iter().map(|(k, v)| (k.to_string(), v.into_owned())).collect(),
    })
}
