//! The one identity extractor: the JWT claims in the API Gateway HTTP API request context
//! (`requestContext.authorizer.jwt.claims`). On AWS the JWT authorizer put them there; locally the local
//! server verifies an HS256 token and puts the same claims in the same place.

use std::collections::HashMap;

use axum::extract::FromRequestParts;
use domain::identity::{Caller, PracticeId, Role};
use http::request::Parts;
use lambda_http::aws_lambda_events::apigw::{
    ApiGatewayRequestAuthorizer, ApiGatewayRequestAuthorizerJwtDescription,
    ApiGatewayV2httpRequestContext,
};
use lambda_http::request::RequestContext;

use crate::http::ApiError;

/// The claims API Gateway hands over, or `None` when the request carries none.
pub fn claims(parts: &Parts) -> Option<&HashMap<String, String>> {
    match parts.extensions.get::<RequestContext>()? {
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
        caller_from_claims(claims(parts)).map(Authenticated)
    }
}
