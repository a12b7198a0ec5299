// SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
// SPDX-License-Identifier: Apache-2.0

//! Bootstrap tokens: finding one in user data, and explaining why the API server
//! refused one. Pure functions only.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;

/// The placeholder the machine controller replaces with the token.
const PLACEHOLDER: &str = "<<BOOTSTRAP_TOKEN>>";
const ID_LEN: usize = 6;
const SECRET_LEN: usize = 16;
const TOKEN_LEN: usize = ID_LEN + 1 + SECRET_LEN;

/// A bootstrap token `<id>.<secret>`. `Debug` and `Display` never show the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct BootstrapToken {
    id: String,
    secret: String,
}

impl BootstrapToken {
    /// The bearer token `<id>.<secret>` (never log it).
    pub fn bearer(&self) -> String {
        format!("{}.{}", self.id, self.secret)
    }

    /// The user name the API server gives to this token.
    pub fn username(&self) -> String {
        format!("system:bootstrap:{}", self.id)
    }

    /// The Secret that holds this token in the target cluster (in `kube-system`).
    pub fn secret_name(&self) -> String {
        format!("bootstrap-token-{}", self.id)
    }
}

impl fmt::Debug for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BootstrapToken({}.<redacted>)", self.id)
    }
}

impl fmt::Display for BootstrapToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bootstrap token {}", self.id)
    }
}

/// Why no token could be taken from the user data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoToken {
    #[error("the user data still contains the {PLACEHOLDER} placeholder (no token was filled in)")]
    Placeholder,
    #[error(
        "the user data mentions a token, but none of the form <id>.<secret> (6 and 16 characters of [a-z0-9])"
    )]
    Malformed,
    #[error("the user data contains no bootstrap token")]
    Missing,
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// A byte that may not touch a token, or it would be part of a longer word.
fn is_word_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Finds the first bootstrap token `<id>.<secret>` in user data (a script, a
/// kubeconfig, ...), as a whole word.
pub fn find_token(userdata: &[u8]) -> Result<BootstrapToken, NoToken> {
    let found = (0..userdata.len().saturating_sub(TOKEN_LEN - 1)).find_map(|start| {
        let candidate = &userdata[start..start + TOKEN_LEN];
        let (id, rest) = candidate.split_at(ID_LEN);
        let (dot, secret) = rest.split_at(1);
        let before_ok = start == 0 || !is_word_char(userdata[start - 1]);
        let after_ok = userdata
            .get(start + TOKEN_LEN)
            .is_none_or(|&b| !is_word_char(b));
        let shape_ok = dot == b"."
            && id.iter().copied().all(is_token_char)
            && secret.iter().copied().all(is_token_char);
        (before_ok && after_ok && shape_ok).then(|| BootstrapToken {
            id: String::from_utf8_lossy(id).into_owned(),
            secret: String::from_utf8_lossy(secret).into_owned(),
        })
    });
    if let Some(token) = found {
        return Ok(token);
    }
    let text = String::from_utf8_lossy(userdata);
    if text.contains(PLACEHOLDER) {
        Err(NoToken::Placeholder)
    } else if text.to_ascii_lowercase().contains("token") {
        Err(NoToken::Malformed)
    } else {
        Err(NoToken::Missing)
    }
}

fn field<'a>(data: &'a BTreeMap<String, ByteString>, key: &str) -> Option<&'a str> {
    data.get(key).and_then(|v| std::str::from_utf8(&v.0).ok())
}

/// Explains why the API server did not accept `token`, given the token's Secret in
/// `kube-system` as the admin sees it (`None`: it does not exist). The text never
/// contains the token secret.
pub fn explain_rejection(
    token: &BootstrapToken,
    secret: Option<&Secret>,
    now: jiff::Timestamp,
) -> String {
    let name = token.secret_name();
    let Some(secret) = secret else {
        return format!(
            "unknown bootstrap token id {} (no Secret kube-system/{name})",
            token.id
        );
    };
    if secret.type_.as_deref() != Some("bootstrap.kubernetes.io/token") {
        return format!("Secret kube-system/{name} is not of type bootstrap.kubernetes.io/token");
    }
    let empty = BTreeMap::new();
    let data = secret.data.as_ref().unwrap_or(&empty);
    if field(data, "token-secret") != Some(token.secret.as_str()) {
        return format!("the secret of bootstrap token {} does not match", token.id);
    }
    if field(data, "usage-bootstrap-authentication") != Some("true") {
        return format!(
            "bootstrap token {} is not allowed for authentication (usage-bootstrap-authentication is not \"true\")",
            token.id
        );
    }
    if let Some(expiration) = field(data, "expiration") {
        match expiration.parse::<jiff::Timestamp>() {
            Ok(at) if at <= now => {
                return format!("bootstrap token {} expired at {expiration}", token.id);
            }
            Ok(_) => {}
            Err(_) => {
                return format!(
                    "bootstrap token {} has an unparsable expiration {expiration:?}",
                    token.id
                );
            }
        }
    }
    if secret.metadata.deletion_timestamp.is_some() {
        return format!("bootstrap token {} is being deleted", token.id);
    }
    format!(
        "the API server rejected bootstrap token {} (is bootstrap token authentication enabled?)",
        token.id
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    const ID: &str = "abcdef";
    const SECRET: &str = "0123456789abcdef";

    fn token() -> BootstrapToken {
        BootstrapToken {
            id: ID.into(),
            secret: SECRET.into(),
        }
    }

    #[test]
    fn finds_token_in_kubeadm_flag() {
        let ud = b"#!/bin/bash\nkubeadm join 10.0.0.1:6443 --token abcdef.0123456789abcdef --discovery-token-unsafe-skip-ca-verification\n";
        assert_eq!(find_token(ud), Ok(token()));
    }

    #[test]
    fn finds_token_in_kubeconfig() {
        let ud =
            b"users:\n- name: kubelet-bootstrap\n  user:\n    token: \"abcdef.0123456789abcdef\"\n";
        assert_eq!(find_token(ud), Ok(token()));
    }

    #[test]
    fn finds_token_at_start_and_end() {
        assert_eq!(find_token(b"abcdef.0123456789abcdef"), Ok(token()));
        assert_eq!(find_token(b"token=abcdef.0123456789abcdef"), Ok(token()));
    }

    #[test]
    fn ignores_tokens_inside_longer_words() {
        assert_eq!(
            find_token(b"token xabcdef.0123456789abcdef"),
            Err(NoToken::Malformed)
        );
        assert_eq!(
            find_token(b"token abcdef.0123456789abcdef0"),
            Err(NoToken::Malformed)
        );
    }

    #[test]
    fn finds_first_valid_token_after_a_bad_one() {
        let ud = b"token: ABCDEF.0123456789ABCDEF\ntoken: abcdef.0123456789abcdef\n";
        assert_eq!(find_token(ud), Ok(token()));
    }

    #[test]
    fn rejects_malformed_tokens() {
        for ud in [
            &b"--token abcdef.0123456789abcde\n"[..],
            b"--token abcde.0123456789abcdef\n",
            b"--token ABCDEF.0123456789ABCDEF\n",
            b"--token abcdef:0123456789abcdef\n",
            b"--token \n",
        ] {
            assert_eq!(
                find_token(ud),
                Err(NoToken::Malformed),
                "{}",
                String::from_utf8_lossy(ud)
            );
        }
    }

    #[test]
    fn reports_placeholder_and_missing() {
        assert_eq!(
            find_token(b"--token <<BOOTSTRAP_TOKEN>>"),
            Err(NoToken::Placeholder)
        );
        assert_eq!(
            find_token(b"#!/bin/sh\necho hello\n"),
            Err(NoToken::Missing)
        );
        assert_eq!(find_token(b""), Err(NoToken::Missing));
        assert_eq!(find_token(&[0xff, 0xfe, b'x']), Err(NoToken::Missing));
    }

    #[test]
    fn never_shows_the_secret() {
        let t = token();
        assert!(!format!("{t:?} {t}").contains(SECRET));
        assert_eq!(t.bearer(), format!("{ID}.{SECRET}"));
        assert_eq!(t.username(), "system:bootstrap:abcdef");
        assert_eq!(t.secret_name(), "bootstrap-token-abcdef");
    }

    fn token_secret(entries: &[(&str, &str)]) -> Secret {
        Secret {
            metadata: ObjectMeta {
                name: Some("bootstrap-token-abcdef".into()),
                ..Default::default()
            },
            type_: Some("bootstrap.kubernetes.io/token".into()),
            data: Some(
                entries
                    .iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    fn now() -> jiff::Timestamp {
        "2030-01-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn explains_unknown_expired_and_mismatched_tokens() {
        let t = token();
        assert!(
            explain_rejection(&t, None, now()).starts_with("unknown bootstrap token id abcdef")
        );

        let valid = [
            ("token-id", ID),
            ("token-secret", SECRET),
            ("usage-bootstrap-authentication", "true"),
            ("expiration", "2031-01-01T00:00:00Z"),
        ];
        let expired = token_secret(&[
            valid[0],
            valid[1],
            valid[2],
            ("expiration", "2029-12-31T23:59:59Z"),
        ]);
        assert_eq!(
            explain_rejection(&t, Some(&expired), now()),
            "bootstrap token abcdef expired at 2029-12-31T23:59:59Z"
        );

        let wrong = token_secret(&[
            valid[0],
            ("token-secret", "ffffffffffffffff"),
            valid[2],
            valid[3],
        ]);
        assert!(explain_rejection(&t, Some(&wrong), now()).contains("does not match"));

        let no_auth = token_secret(&[valid[0], valid[1], valid[3]]);
        assert!(
            explain_rejection(&t, Some(&no_auth), now()).contains("not allowed for authentication")
        );

        let mut untyped = token_secret(&valid);
        untyped.type_ = Some("Opaque".into());
        assert!(explain_rejection(&t, Some(&untyped), now()).contains("is not of type"));

        let fine = token_secret(&valid);
        assert!(explain_rejection(&t, Some(&fine), now()).contains("rejected"));

        for secret in [
            None,
            Some(&expired),
            Some(&wrong),
            Some(&no_auth),
            Some(&fine),
        ] {
            assert!(!explain_rejection(&t, secret, now()).contains(SECRET));
        }
    }
}
