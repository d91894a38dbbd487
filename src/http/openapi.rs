//! The OpenAPI 3.1 document, built from the code: each handler's `#[utoipa::path]` (registered
//! with its route in `http::api_routes`), the `ToSchema` of the bodies, and the `ErrorCode` table.
//!
//! Problems: the `Problem` schema lists every code of the table. Each operation names the codes
//! it can answer with `problems!`, and gets one response per status, whose schema is `Problem`
//! with `code` narrowed to those codes. Every operation may also answer `request_timeout` (the
//! timeout layer) and `internal`.

use std::collections::BTreeMap;

use axum::http::Method;
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::schema::{
    AllOfBuilder, ArrayBuilder, ObjectBuilder, Schema, SchemaFormat, SchemaType,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, HeaderBuilder, KnownFormat, OpenApi, Ref, RefOr, Response, ResponseBuilder,
    Type,
};
use utoipa::{Modify, PartialSchema, ToSchema};

use crate::domain::{PolicyViolation, UserId};
use crate::error::ErrorCode;

/// The media type of every error body (RFC 9457 §3).
const PROBLEM_JSON: &str = "application/problem+json";

/// What any operation may answer, whatever it does.
const EVERY_OPERATION: &[ErrorCode] = &[ErrorCode::RequestTimeout, ErrorCode::Internal];

/// What an operation with a JSON body may answer before its handler runs.
pub const JSON_BODY: &[ErrorCode] =
    &[ErrorCode::MalformedRequest, ErrorCode::PayloadTooLarge, ErrorCode::UnsupportedMediaType];

/// Declares a type, for `responses(...)` of `#[utoipa::path]`, that lists the problems an
/// operation can answer: `problems!(Name: JSON_BODY, [InvalidCredentials, RateLimited])`. Each
/// part is a slice or an array of `ErrorCode` variants.
macro_rules! problems {
    ($(#[$doc:meta])* $name:ident: $($part:expr),+ $(,)?) => {
        $(#[$doc])*
        pub struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> std::collections::BTreeMap<
                String,
                utoipa::openapi::RefOr<utoipa::openapi::Response>,
            > {
                #[allow(unused_imports)]
                use $crate::error::ErrorCode::*;
                #[allow(unused_imports)]
                use $crate::http::openapi::JSON_BODY;
                $crate::http::openapi::problem_responses(&[$(&$part[..]),+].concat())
            }
        }
    };
}
pub(crate) use problems;

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "portcullis",
        description = "A self-hosted authentication service. Errors are RFC 9457 problem details \
            with a machine-readable code, except on /oauth2/*, which answers RFC 6749 error \
            objects. Every response carries security headers and X-Request-Id.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    modifiers(&Components),
    components(schemas(super::oauth::OAuthErrorBody)),
    tags(
        (name = "auth", description = "Accounts, tokens and sessions"),
        (name = "account", description = "Address verification, password reset, email change, deletion"),
        (name = "mfa", description = "TOTP, recovery codes and the second step of a login"),
        (name = "passkeys", description = "Passkeys (WebAuthn Level 3)"),
        (name = "admin", description = "Administration (role admin)"),
        (name = "clients", description = "OAuth clients (role admin)"),
        (name = "oauth", description = "The OAuth endpoints where a client authenticates"),
        (name = "operations", description = "Keys, health, metrics and this document"),
    ),
)]
struct ApiDoc;

/// The document before any route is added: info, tags, the bearer scheme, the Problem schema.
pub fn base() -> OpenApi {
    <ApiDoc as utoipa::OpenApi>::openapi()
}

struct Components;

impl Modify for Components {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some("An access token (JWT, typ at+jwt) from login or refresh"))
            .build();
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        components.schemas.insert("Problem".to_owned(), problem_schema());
    }
}

/// RFC 9457 problem details with the contract's members.
fn problem_schema() -> RefOr<Schema> {
    let string = || ObjectBuilder::new().schema_type(Type::String);
    let codes = ErrorCode::ALL.iter().map(|code| code.slug());
    ObjectBuilder::new()
        .description(Some("An error, as RFC 9457 problem details"))
        .property("type", string().description(Some("/errors/<code>")))
        .property("title", string().description(Some("The code's title")))
        .property("status", ObjectBuilder::new().schema_type(Type::Integer))
        .property("code", string().enum_values(Some(codes)))
        .property("detail", string().description(Some("A human-readable explanation")))
        .property("request_id", string().description(Some("The response's X-Request-Id")))
        .property(
            "violations",
            ArrayBuilder::new()
                .items(<PolicyViolation as PartialSchema>::schema())
                .description(Some("With password_policy: every rule the password breaks")),
        )
        .required("type")
        .required("title")
        .required("status")
        .required("code")
        .required("detail")
        .required("request_id")
        .into()
}

/// One response per status among `codes` (and those every operation may answer), each a
/// `Problem` whose `code` is one of the codes of that status.
pub fn problem_responses(codes: &[ErrorCode]) -> BTreeMap<String, RefOr<Response>> {
    let mut by_status: BTreeMap<u16, Vec<ErrorCode>> = BTreeMap::new();
    for &code in codes.iter().chain(EVERY_OPERATION) {
        let same = by_status.entry(code.status().as_u16()).or_default();
        if !same.contains(&code) {
            same.push(code);
        }
    }
    by_status
        .into_iter()
        .map(|(status, codes)| (status.to_string(), problem_response(status, &codes).into()))
        .collect()
}

fn problem_response(status: u16, codes: &[ErrorCode]) -> Response {
    let description: Vec<String> =
        codes.iter().map(|code| format!("{} (`{}`)", code.title(), code.slug())).collect();
    let narrowed = ObjectBuilder::new()
        .property(
            "code",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(codes.iter().map(|code| code.slug()))),
        )
        .property(
            "status",
            ObjectBuilder::new().schema_type(Type::Integer).enum_values(Some([status])),
        );
    let schema = AllOfBuilder::new().item(Ref::from_schema_name("Problem")).item(narrowed);
    let mut response = ResponseBuilder::new()
        .description(description.join("; "))
        .content(PROBLEM_JSON, ContentBuilder::new().schema(Some(schema)).build());
    let integer = |description: &str| {
        HeaderBuilder::new()
            .schema(ObjectBuilder::new().schema_type(Type::Integer))
            .description(Some(description))
            .build()
    };
    if codes.contains(&ErrorCode::Unauthorized) {
        let challenge = HeaderBuilder::new()
            .schema(ObjectBuilder::new().schema_type(Type::String))
            .description(Some("Bearer, where a bearer token was required (RFC 6750)"))
            .build();
        response = response.header("WWW-Authenticate", challenge);
    }
    let waits = [ErrorCode::RateLimited, ErrorCode::AccountLocked, ErrorCode::ServiceUnavailable];
    if codes.iter().any(|code| waits.contains(code)) {
        response = response.header("Retry-After", integer("Whole seconds to wait"));
    }
    if codes.contains(&ErrorCode::RateLimited) {
        response = response
            .header("RateLimit-Limit", integer("The budget's burst"))
            .header("RateLimit-Remaining", integer("0"))
            .header("RateLimit-Reset", integer("Whole seconds until a request is allowed"));
    }
    response.build()
}

/// What a string query parameter may hold: anything but a control character (C0, DEL, C1),
/// which every route refuses with 422 `validation_failed` before it runs.
const NO_CONTROL_CHARACTERS: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$";

/// States in the document, on every string query parameter, that control characters are
/// refused: the rule is the middleware's, for every route, so it is written here once.
pub fn forbid_control_characters_in_queries(api: &mut OpenApi) {
    let is_string = |schema_type: &SchemaType| match schema_type {
        SchemaType::Type(kind) => *kind == Type::String,
        SchemaType::Array(kinds) => kinds.contains(&Type::String),
        SchemaType::AnyValue => false,
    };
    for item in api.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
        ];
        let parameters = operations
            .into_iter()
            .flatten()
            .filter_map(|operation| operation.parameters.as_mut())
            .flatten()
            .filter(|parameter| parameter.parameter_in == ParameterIn::Query);
        for parameter in parameters {
            if let Some(RefOr::T(Schema::Object(object))) = parameter.schema.as_mut()
                && is_string(&object.schema_type)
                && object.pattern.is_none()
            {
                object.pattern = Some(NO_CONTROL_CHARACTERS.to_owned());
            }
        }
    }
}

/// The operations of a path item, with their methods.
pub fn operations(item: &PathItem) -> Vec<(Method, &Operation)> {
    [
        (Method::GET, &item.get),
        (Method::PUT, &item.put),
        (Method::POST, &item.post),
        (Method::DELETE, &item.delete),
        (Method::OPTIONS, &item.options),
        (Method::HEAD, &item.head),
        (Method::PATCH, &item.patch),
        (Method::TRACE, &item.trace),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.as_ref().map(|operation| (method, operation)))
    .collect()
}

impl PartialSchema for UserId {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
            .into()
    }
}

impl ToSchema for UserId {}
