//! Webhook secrets from AWS Secrets Manager: one secret whose string is
//! `{"current": …, "previous": …}` (the stack builds it from `NoEcho` parameters).

use super::{parse_stored, FetchSecrets, SecretFetchError};
use crate::signature::Secrets;
use async_trait::async_trait;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use aws_sdk_secretsmanager::Client;

#[derive(Debug, Clone)]
pub struct SecretsManagerSecrets {
    client: Client,
    secret_id: String,
}

impl SecretsManagerSecrets {
    pub fn new(client: Client, secret_id: impl Into<String>) -> SecretsManagerSecrets {
        SecretsManagerSecrets {
            client,
            secret_id: secret_id.into(),
        }
    }
}

#[async_trait]
impl FetchSecrets for SecretsManagerSecrets {
    async fn fetch(&self) -> Result<Secrets, SecretFetchError> {
        parse_stored(&secret_string(&self.client, &self.secret_id).await?)
    }
}

/// A secret's string value (the webhook secrets, or the Zof API token).
pub async fn secret_string(client: &Client, secret_id: &str) -> Result<String, SecretFetchError> {
    let out = client
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| SecretFetchError::Unavailable(DisplayErrorContext(&e).to_string()))?;
    out.secret_string()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| SecretFetchError::Invalid("the secret has no string value".into()))
}
