//! GitHub (`kind = "github"`): an OAuth app, which has no OpenID Connect,
//! so who signed in comes from GitHub's REST API: the user, their
//! verified primary email, their organisations and teams (groups `org`
//! and `org/team`). The code exchange is the `oauth2` crate's, with PKCE.

use oauth2::basic::BasicClient;
use oauth2::{
    AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse, TokenUrl,
};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::config::{GithubConfig, ProviderConfig};
use crate::store::ProviderTokens;

use super::http::{HttpError, ProviderHttp};
use super::{error_chain, Authorization, OutsideError, OutsideIdentity};

/// What the gateway asks GitHub for: the profile, the email addresses,
/// and the organisations and teams.
const SCOPES: [&str; 3] = ["read:user", "user:email", "read:org"];

type GithubClient = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// `GET /user`.
#[derive(Deserialize)]
struct GithubUser {
    login: String,
    id: u64,
    name: Option<String>,
}

/// One of `GET /user/emails`.
#[derive(Deserialize)]
struct GithubEmail {
    email: String,
    primary: bool,
    verified: bool,
}

/// One of `GET /user/orgs`.
#[derive(Deserialize)]
struct GithubOrg {
    login: String,
}

/// One of `GET /user/teams`.
#[derive(Deserialize)]
struct GithubTeam {
    slug: String,
    organization: GithubOrg,
}

/// The HTTP client for GitHub's token endpoint, which answers a refused
/// code with `200` and an error object: read as the error it is (RFC 6749
/// §5.2 says `400`).
struct TokenEndpoint<'a>(&'a ProviderHttp);

impl<'c> oauth2::AsyncHttpClient<'c> for TokenEndpoint<'_> {
    type Error = HttpError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<oauth2::HttpResponse, HttpError>> + Send + 'c>,
    >;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(async move {
            let mut response = self.0.send(request).await?;
            let refused = serde_json::from_slice::<serde_json::Value>(response.body())
                .is_ok_and(|body| body.get("error").is_some());
            if response.status() == http::StatusCode::OK && refused {
                *response.status_mut() = http::StatusCode::BAD_REQUEST;
            }
            Ok(response)
        })
    }
}

/// GitHub, or a GitHub Enterprise server.
pub(crate) struct GithubProvider {
    id: String,
    config: GithubConfig,
    http: ProviderHttp,
}

impl std::fmt::Debug for GithubProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GithubProvider").field("id", &self.id).finish()
    }
}

impl GithubProvider {
    pub(crate) fn new(provider: &ProviderConfig, config: &GithubConfig) -> Result<Self, String> {
        Ok(Self {
            id: provider.id.clone(),
            http: ProviderHttp::new(config.timeout, config.ca_file.as_deref())?,
            config: config.clone(),
        })
    }

    fn client(&self, redirect_uri: &str) -> Result<GithubClient, OutsideError> {
        let web = |path: &str| self.config.web_url.join(path).map(|u| u.to_string());
        let invalid = |e: &dyn std::fmt::Display| OutsideError::Invalid(e.to_string());
        Ok(BasicClient::new(ClientId::new(self.config.client_id.clone()))
            .set_client_secret(ClientSecret::new(self.config.client_secret.expose().to_owned()))
            .set_auth_uri(
                AuthUrl::new(web("login/oauth/authorize").map_err(|e| invalid(&e))?)
                    .map_err(|e| invalid(&e))?,
            )
            .set_token_uri(
                TokenUrl::new(web("login/oauth/access_token").map_err(|e| invalid(&e))?)
                    .map_err(|e| invalid(&e))?,
            )
            .set_redirect_uri(RedirectUrl::new(redirect_uri.to_owned()).map_err(|e| invalid(&e))?))
    }

    pub(crate) fn start(&self, redirect_uri: &str) -> Result<Authorization, OutsideError> {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state) = self
            .client(redirect_uri)?
            .authorize_url(CsrfToken::new_random)
            .add_scopes(SCOPES.map(|s| Scope::new(s.to_owned())))
            .set_pkce_challenge(challenge)
            .url();
        Ok(Authorization {
            url,
            state: state.secret().clone(),
            nonce: None,
            verifier: verifier.secret().clone(),
        })
    }

    pub(crate) async fn finish(
        &self,
        redirect_uri: &str,
        code: &str,
        verifier: &str,
    ) -> Result<OutsideIdentity, OutsideError> {
        let token = self
            .client(redirect_uri)?
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_owned()))
            .request_async(&TokenEndpoint(&self.http))
            .await
            .map_err(|e| OutsideError::Refused(format!("the token request failed: {}", error_chain(&e))))?;
        let token = token.access_token().secret();
        let user: GithubUser = self.get(token, "user").await?;
        let emails: Vec<GithubEmail> = self.get(token, "user/emails").await?;
        let orgs: Vec<GithubOrg> = self.get(token, "user/orgs").await?;
        let teams: Vec<GithubTeam> = self.get(token, "user/teams").await?;
        let mut groups: Vec<String> = orgs.iter().map(|o| o.login.to_ascii_lowercase()).collect();
        groups.extend(
            teams
                .iter()
                .map(|t| format!("{}/{}", t.organization.login.to_ascii_lowercase(), t.slug)),
        );
        if !self.config.allowed_orgs.is_empty()
            && !orgs
                .iter()
                .any(|o| self.config.allowed_orgs.contains(&o.login.to_ascii_lowercase()))
        {
            return Err(OutsideError::NotAllowed(format!(
                "Only members of the GitHub organisation{} {} may sign in here.",
                if self.config.allowed_orgs.len() > 1 {
                    "s"
                } else {
                    ""
                },
                self.config.allowed_orgs.join(", ")
            )));
        }
        let email = emails
            .into_iter()
            .find(|e| e.primary && e.verified)
            .map(|e| e.email);
        Ok(OutsideIdentity {
            subject: user.id.to_string(),
            username: user.login,
            email_verified: email.is_some(),
            email,
            name: user.name,
            groups,
            sid: None,
            hosted_domain: None,
            amr: Vec::new(),
            acr: None,
            // OAuth apps' tokens do not expire, and come with no refresh token.
            tokens: Some(ProviderTokens::issued(token, None, None, None)),
        })
    }

    /// `GET` of the REST API at `path`, as JSON.
    async fn get<T: DeserializeOwned>(&self, token: &str, path: &str) -> Result<T, OutsideError> {
        let url = self
            .config
            .api_url
            .join(path)
            .map_err(|e| OutsideError::Invalid(e.to_string()))?;
        let request = http::Request::get(url.as_str())
            .header(http::header::ACCEPT, "application/vnd.github+json")
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .header("x-github-api-version", "2022-11-28")
            .body(Vec::new())
            .map_err(|e| OutsideError::Invalid(e.to_string()))?;
        let response = self
            .http
            .send(request)
            .await
            .map_err(|e| OutsideError::Unreachable(e.to_string()))?;
        if !response.status().is_success() {
            return Err(OutsideError::Refused(format!(
                "GET {path} answered {}",
                response.status()
            )));
        }
        serde_json::from_slice(response.body()).map_err(|e| OutsideError::Invalid(format!("GET {path}: {e}")))
    }
}
