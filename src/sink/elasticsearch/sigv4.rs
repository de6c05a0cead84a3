//! SigV4: signing every cluster request with AWS Signature Version 4, for Amazon OpenSearch
//! Service domains (`es`) and OpenSearch Serverless collections (`aoss`).
//!
//! Input: a request's method, full URL (path and query as sent) and body bytes (the
//! compressed ones, when the body is gzipped: the signature covers what is sent). Output: the
//! headers to add (`authorization`, `x-amz-date`, `x-amz-content-sha256`, and
//! `x-amz-security-token` for temporary credentials). The signing itself is the AWS SDK's
//! (`aws-sigv4`); `x-amz-content-sha256` is always signed, since Serverless requires it.
//!
//! Credentials come from the standard AWS chain (the same as SQS and S3 use) and are kept
//! until five minutes before they expire, then fetched again, so rotated task-role or
//! instance-profile credentials are picked up without a restart. [`Signer::forget`] drops them
//! at once (after the cluster refused a signature), so that the next request fetches anew.

pub use crate::config::AwsService;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, SignableBody, SignableRequest, SigningSettings,
};
use aws_sigv4::sign::v4;

/// Credentials are fetched again this long before they expire.
const REFRESH_BEFORE_EXPIRY: Duration = Duration::from_secs(300);

pub struct Signer {
    provider: SharedCredentialsProvider,
    region: String,
    service: AwsService,
    cached: Mutex<Option<Credentials>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("region", &self.region)
            .field("service", &self.service)
            .finish_non_exhaustive()
    }
}

impl Signer {
    pub fn new(provider: SharedCredentialsProvider, region: String, service: AwsService) -> Self {
        Signer {
            provider,
            region,
            service,
            cached: Mutex::new(None),
        }
    }

    pub fn service(&self) -> AwsService {
        self.service
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    /// The headers that sign this request, made now.
    pub async fn headers(
        &self,
        method: &str,
        url: &str,
        body: &[u8],
    ) -> Result<Vec<(String, String)>, String> {
        let credentials = self.credentials().await?;
        signed_headers(
            &credentials,
            &self.region,
            self.service,
            SystemTime::now(),
            method,
            url,
            body,
        )
    }

    /// Drops the credentials held, so that the next request fetches them again.
    pub fn forget(&self) {
        *self
            .cached
            .lock()
            .expect("the credential cache is not poisoned") = None;
    }

    async fn credentials(&self) -> Result<Credentials, String> {
        let fresh = |c: &Credentials| {
            c.expiry()
                .is_none_or(|expiry| expiry > SystemTime::now() + REFRESH_BEFORE_EXPIRY)
        };
        if let Some(held) = self
            .cached
            .lock()
            .expect("the credential cache is not poisoned")
            .clone()
            .filter(fresh)
        {
            return Ok(held);
        }
        let credentials = self
            .provider
            .provide_credentials()
            .await
            .map_err(|e| format!("no AWS credentials to sign cluster requests with: {e}"))?;
        *self
            .cached
            .lock()
            .expect("the credential cache is not poisoned") = Some(credentials.clone());
        Ok(credentials)
    }
}

/// What a refusal of a signed request most likely means, and what to change: one line.
/// `refetch` is set when fresh credentials may help (an expired or invalid token, a signature
/// AWS could not match).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    pub hint: String,
    pub refetch: bool,
}

/// Reads a 401/403 body of Amazon OpenSearch Service or Serverless.
pub fn diagnose(status: u16, body: &str, service: AwsService, region: &str) -> Diagnosis {
    let lower = body.to_ascii_lowercase();
    let action = match service {
        AwsService::Es => "es:ESHttpGet, es:ESHttpHead, es:ESHttpPost and es:ESHttpPut on the domain (arn:aws:es:REGION:ACCOUNT:domain/NAME/*)",
        AwsService::Aoss => "aoss:APIAccessAll on the collection",
    };
    let (hint, refetch) = if lower.contains("signature expired")
        || lower.contains("request time") && lower.contains("too skewed")
    {
        ("the signature is too old or too new: the clock of this host is off by more than 5 minutes; sync it (chrony, NTP)".to_string(), false)
    } else if lower.contains("security token")
        && (lower.contains("invalid") || lower.contains("expired"))
    {
        ("AWS does not know these credentials (a wrong access key, or an expired or revoked session token): they are fetched again; if it persists, check the credential chain (AWS_PROFILE, AWS_ACCESS_KEY_ID, the task role or instance profile)".to_string(), true)
    } else if lower.contains("signature we calculated does not match") {
        (format!("AWS computed another signature: check --elasticsearch-aws-region (signing for {region}), --elasticsearch-aws-service ({}), and that nothing between here and the cluster rewrites the request", service.name()), true)
    } else if lower.contains("no permissions for") || lower.contains("security_exception") {
        ("fine-grained access control knows the IAM role but maps it to no role with these permissions: map the task role's ARN as a backend role of a role with cluster_monitor, indices:data/write/bulk*, indices:admin/create, indices:admin/template/* (or map it to all_access); see deploy/iam/".to_string(), false)
    } else if lower.contains("is not authorized to perform") || lower.contains("explicit deny") {
        (format!("IAM does not allow this role on the cluster: grant {action} in the role's policy or the domain's access policy; see deploy/iam/"), false)
    } else if service == AwsService::Aoss {
        ("OpenSearch Serverless refused the request: add the role to a data access policy of the collection (aoss:WriteDocument, aoss:CreateIndex, aoss:DescribeIndex, aoss:UpdateIndex on index/COLLECTION/*) and grant aoss:APIAccessAll in its IAM policy; see deploy/iam/".to_string(), false)
    } else {
        (format!("HTTP {status}: the cluster refuses the signed request: grant {action}, and map the role in fine-grained access control; see deploy/iam/"), false)
    };
    Diagnosis { hint, refetch }
}

/// The SigV4 headers of one request: pure, for a given time.
pub fn signed_headers(
    credentials: &Credentials,
    region: &str,
    service: AwsService,
    time: SystemTime,
    method: &str,
    url: &str,
    body: &[u8],
) -> Result<Vec<(String, String)>, String> {
    let identity = credentials.clone().into();
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service.name())
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| format!("cannot sign: {e}"))?
        .into();
    let host = host_of(url)?;
    let request = SignableRequest::new(
        method,
        url,
        std::iter::once(("host", host.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(|e| format!("cannot sign a request to {url}: {e}"))?;
    let (instructions, _) = sign(request, &params)
        .map_err(|e| format!("cannot sign a request to {url}: {e}"))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect())
}

/// `host[:port]` of `url`, as the HTTP client sends it in `Host`.
fn host_of(url: &str) -> Result<String, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{url} is not a URL: {e}"))?;
    let host = parsed
        .host_str()
        .ok_or_else(|| format!("{url} has no host"))?;
    Ok(match parsed.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn credentials(token: Option<&str>) -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            token.map(str::to_string),
            None,
            "test",
        )
    }

    /// 2015-08-30T12:36:00Z, the time of AWS's SigV4 test suite.
    fn time() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160)
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn signs_host_date_and_body_hash_for_the_region_and_service() {
        let headers = signed_headers(
            &credentials(None),
            "eu-west-1",
            AwsService::Es,
            time(),
            "POST",
            "https://search-logs.eu-west-1.es.amazonaws.com/_bulk?filter_path=errors",
            b"{}\n",
        )
        .unwrap();
        assert_eq!(header(&headers, "x-amz-date"), Some("20150830T123600Z"));
        assert_eq!(
            header(&headers, "x-amz-content-sha256"),
            Some("ca3d163bab055381827226140568f3bef7eaac187cebd76878e0b63e9e442356")
        );
        let auth = header(&headers, "authorization").unwrap();
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/eu-west-1/es/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature="),
            "{auth}"
        );
        assert_eq!(header(&headers, "x-amz-security-token"), None);
    }

    #[test]
    fn temporary_credentials_add_their_token_and_aoss_is_its_own_service() {
        let headers = signed_headers(
            &credentials(Some("session-token")),
            "us-east-1",
            AwsService::Aoss,
            time(),
            "GET",
            "https://abc123.us-east-1.aoss.amazonaws.com/",
            b"",
        )
        .unwrap();
        assert_eq!(
            header(&headers, "x-amz-security-token"),
            Some("session-token")
        );
        let auth = header(&headers, "authorization").unwrap();
        assert!(auth.contains("/us-east-1/aoss/aws4_request"), "{auth}");
        assert!(
            auth.contains("x-amz-security-token"),
            "the token is signed: {auth}"
        );
    }

    #[test]
    fn refusals_are_explained_by_their_likely_cause() {
        let cases = [
            (
                r#"{"message":"Signature expired: 20240101T000000Z is now earlier than 20240101T000500Z (20240101T001000Z - 5 min.)"}"#,
                "clock",
                false,
            ),
            (
                r#"{"message":"The security token included in the request is invalid."}"#,
                "does not know these credentials",
                true,
            ),
            (
                r#"{"message":"The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."}"#,
                "--elasticsearch-aws-region",
                true,
            ),
            (
                r#"{"Message":"User: arn:aws:sts::123456789012:assumed-role/ct/abc is not authorized to perform: es:ESHttpPost because no resource-based policy allows the es:ESHttpPost action"}"#,
                "es:ESHttpPut on the domain",
                false,
            ),
            (
                r#"{"error":{"root_cause":[{"type":"security_exception","reason":"no permissions for [indices:data/write/bulk] and User [name=arn:aws:iam::123456789012:role/ct, backend_roles=[arn:aws:iam::123456789012:role/ct]]"}],"type":"security_exception"},"status":403}"#,
                "backend role",
                false,
            ),
        ];
        for (body, expected, refetch) in cases {
            let diagnosis = diagnose(403, body, AwsService::Es, "us-east-1");
            assert!(
                diagnosis.hint.contains(expected),
                "{body}: {}",
                diagnosis.hint
            );
            assert_eq!(diagnosis.refetch, refetch, "{body}");
        }
        let serverless = diagnose(
            403,
            r#"{"status":403,"request-id":"x","error":{"reason":"403 Forbidden","type":"Forbidden"}}"#,
            AwsService::Aoss,
            "us-east-1",
        );
        assert!(
            serverless.hint.contains("data access policy"),
            "{}",
            serverless.hint
        );
    }

    #[test]
    fn the_signature_depends_on_every_byte_sent() {
        let sign = |body: &[u8], url: &str| {
            signed_headers(
                &credentials(None),
                "us-east-1",
                AwsService::Es,
                time(),
                "POST",
                url,
                body,
            )
            .unwrap()
        };
        let url = "http://127.0.0.1:9200/_bulk";
        let a = sign(b"a", url);
        assert_ne!(
            header(&a, "authorization"),
            header(&sign(b"b", url), "authorization")
        );
        assert_ne!(
            header(&a, "authorization"),
            header(&sign(b"a", "http://127.0.0.1:9201/_bulk"), "authorization"),
            "the port is part of the signed host"
        );
    }
}
