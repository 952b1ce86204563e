//! The one identity extractor: the JWT claims in the API Gateway HTTP API request context
//! (`requestContext.authorizer.jwt.claims`). On AWS the JWT authorizer put them there; locally the local
//! server (and a function under `cargo lambda watch`, on request) verifies an HS256 token and puts the same
//! claims in the same place ([`LocalTokens`]).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use domain::identity::{Caller, PracticeId, Role};
use http::request::Parts;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription,
    ApiGatewayV2httpRequestContext,
};
use lambda_http::request::RequestContext;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::Config;
use crate::http::ApiError;

/// The claims API Gateway hands over, or `None` when the request carries none.
pub fn claims(extensions: &http::Extensions) -> Option<&HashMap<String, String>> {
    match extensions.get::<RequestContext>()? {
        RequestContext::ApiGatewayV2(ctx) => Some(&ctx.authorizer.as_ref()?.jwt.as_ref()?.claims),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Reads the caller from the claims: 401 when there are none or one is missing, 403 for an unknown role.
pub fn caller_from_claims(claims: Option<&HashMap<String, String>>) -> Result<Caller, ApiError> {
    let claims =
        claims.ok_or_else(|| ApiError::Unauthenticated("a bearer token is required".into()))?;
    let get = |name: &str| {
        claims
            .get(name)
            .filter(|v| !v.trim().is_empty())
            .ok_or_else(|| ApiError::Unauthenticated(format!("the token has no {name:?} claim")))
    };
    let sub = get("sub")?.clone();
    // The user id becomes part of storage keys (a client's open conversation): bounded like every id.
    if !domain::identity::plausible_id(&sub) {
        return Err(ApiError::Unauthenticated(
            "the token's sub claim is not a valid user id".into(),
        ));
    }
    let practice_id = PracticeId::parse(get("practice_id")?).ok_or_else(|| {
        ApiError::Unauthenticated("the token's practice_id claim is not a valid id".into())
    })?;
    let role = get("role")?;
    let role = Role::parse(role).ok_or_else(|| {
        domain::DomainError::Forbidden(format!("role {role:?} is not a role of this service"))
    })?;
    Ok(Caller {
        sub,
        practice_id,
        role,
    })
}

/// Request context carrying `claims` exactly as API Gateway's JWT authorizer shapes it.
pub fn request_context_with_claims(claims: HashMap<String, String>) -> RequestContext {
    // The event types are non-exhaustive: build from defaults and set what the authorizer sets.
    let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
    jwt.claims = claims;
    let mut authorizer = ApiGatewayRequestAuthorizer::default();
    authorizer.jwt = Some(jwt);
    let mut context = ApiGatewayV2httpRequestContext::default();
    context.authorizer = Some(authorizer);
    RequestContext::ApiGatewayV2(context)
}

/// Axum extractor for the authenticated caller.
pub struct Authenticated(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        caller_from_claims(claims(&parts.extensions)).map(Authenticated)
    }
}

/// The claims a local token carries (the contract's three plus the standard ones).
#[derive(Debug, Serialize, Deserialize)]
pub struct LocalClaims {
    pub sub: String,
    pub practice_id: String,
    pub role: String,
    pub iss: String,
    pub iat: i64,
    pub exp: i64,
}

pub const LOCAL_ISSUER: &str = "vetchat-local";

/// Verifies local HS256 tokens (`LOCAL_JWT_SECRET`), the stand-in for API Gateway's JWT authorizer.
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
}

impl TokenVerifier {
    pub fn new(secret: &str) -> Self {
        // HS256 only: a token with another algorithm (or "none") is refused.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_aud = false;
        validation.leeway = 0;
        TokenVerifier {
            key: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        }
    }

    /// The claims as API Gateway's JWT authorizer hands them over: every value a string.
    pub fn verify(&self, token: &str) -> Result<HashMap<String, String>, String> {
        let data = decode::<HashMap<String, Value>>(token, &self.key, &self.validation)
            .map_err(|e| format!("the token is not valid: {e}"))?;
        Ok(data
            .claims
            .into_iter()
            .map(|(k, v)| {
                let s = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, s)
            })
            .collect())
    }
}

/// Signs a local token for a practice and role (what `cargo run -- token` prints).
pub fn sign_token(
    secret: &str,
    practice_id: &str,
    role: Role,
    sub: &str,
    now: i64,
    ttl_secs: i64,
) -> String {
    let claims = LocalClaims {
        sub: sub.to_owned(),
        practice_id: practice_id.to_owned(),
        role: role.as_str().to_owned(),
        iss: LOCAL_ISSUER.to_owned(),
        iat: now,
        exp: now + ttl_secs,
    };
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("HS256 signing cannot fail")
}

/// Plays API Gateway's JWT authorizer in front of a router: protected routes need a valid bearer token,
/// whose claims are put in the request context; `/public/...` and `/_local/...` take none.
pub struct LocalTokens {
    verifier: TokenVerifier,
    /// Keep claims an authorizer already put in the request context (a function under `cargo lambda watch`
    /// given an event that carries them) instead of clearing them (the local server, where the context is
    /// the server's alone to set).
    keep_authorizer_claims: bool,
}

impl LocalTokens {
    /// For the all-in-one local server: every protected request is verified here.
    pub fn for_local_server(secret: &str) -> Self {
        LocalTokens {
            verifier: TokenVerifier::new(secret),
            keep_authorizer_claims: false,
        }
    }

    /// For a Lambda function run by `cargo lambda watch` (explicit opt-in: `LOCAL_JWT_SECRET` set): a request
    /// that already carries authorizer claims is left as it is; one without them has its bearer token
    /// verified. On AWS every protected route sits behind the JWT authorizer, so this never decides there.
    pub fn for_lambda_watch(secret: &str) -> Self {
        LocalTokens {
            verifier: TokenVerifier::new(secret),
            keep_authorizer_claims: true,
        }
    }

    /// `router` behind this verification.
    pub fn layer<S: Clone + Send + Sync + 'static>(self, router: Router<S>) -> Router<S> {
        router.layer(middleware::from_fn_with_state(
            Arc::new(self),
            verify_local_token,
        ))
    }
}

async fn verify_local_token(
    State(tokens): State<Arc<LocalTokens>>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let public = path.starts_with("/public/") || path.starts_with("/_local/");
    if tokens.keep_authorizer_claims && claims(request.extensions()).is_some() {
        return next.run(request).await;
    }
    if !tokens.keep_authorizer_claims {
        // Whatever the client sent, the request context is the server's to set.
        request.extensions_mut().remove::<RequestContext>();
    }
    if public {
        return next.run(request).await;
    }
    let header = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    if let Some(h) = header {
        let Some(token) = h
            .strip_prefix("Bearer ")
            .or_else(|| h.strip_prefix("bearer "))
        else {
            return ApiError::Unauthenticated("Authorization must be \"Bearer <token>\"".into())
                .into_response();
        };
        match tokens.verifier.verify(token.trim()) {
            Ok(verified) => set_claims(request.extensions_mut(), verified),
            Err(reason) => return ApiError::Unauthenticated(reason).into_response(),
        }
    }
    next.run(request).await
}

/// Puts `claims` where API Gateway's JWT authorizer puts them, keeping the rest of a Lambda request context.
fn set_claims(extensions: &mut http::Extensions, claims: HashMap<String, String>) {
    if let Some(RequestContext::ApiGatewayV2(ctx)) = extensions.get_mut::<RequestContext>() {
        let mut jwt = ApiGatewayRequestAuthorizerJwtDescription::default();
        jwt.claims = claims;
        let authorizer = ctx
            .authorizer
            .get_or_insert_with(ApiGatewayRequestAuthorizer::default);
        authorizer.jwt = Some(jwt);
        return;
    }
    extensions.insert(request_context_with_claims(claims));
}

/// The router a Lambda HTTP function serves. With `LOCAL_JWT_SECRET` set (only `cargo lambda watch` sets it,
/// from Cargo.toml), requests without authorizer claims have their local bearer token verified, so the app
/// and dashboard can call the functions under watch as they call the local server.
pub fn lambda_router(router: Router, config: &Config) -> Router {
    match &config.local_jwt_secret {
        None => router,
        Some(secret) => {
            tracing::warn!(
                "LOCAL_JWT_SECRET is set: verifying local HS256 tokens on requests that carry no \
                 authorizer claims (cargo lambda watch); never set it on AWS"
            );
            LocalTokens::for_lambda_watch(secret).layer(router)
        }
    }
}
