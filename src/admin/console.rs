//! The admin console (`/management/admin/`): server-rendered pages, no
//! script, a form with its CSRF field for every change, each answered by a
//! redirect back to its page (Post/Redirect/Get) that says what happened.
//! The changes are the admin API's operations, so the two never disagree.

use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use percent_encoding::percent_decode_str;
use serde::Serialize;

use crate::auth::csrf::CSRF_COOKIE;
use crate::auth::state::AuthState;
use crate::db::AuditFilter;
use crate::web::request::{self, cookie, Params};
use crate::web::response::{self, OwnBody};

use super::api::{
    self, ClientChange, NewClientBody, NewGroupBody, NewUserBody, Required, SessionQuery, UserChange,
    UserQuery,
};
use super::problem::Problem;
use super::{is_admin, Admin, BoxError};

/// Where the console is.
pub(crate) const PREFIX: &str = "/management/admin/";

/// A page's figures on the dashboard.
#[derive(Debug, Default, Serialize)]
struct Figures {
    live_sessions: String,
    succeeded: usize,
    failed: usize,
    throttled: usize,
}

#[derive(Debug, Serialize)]
struct Bar {
    x: usize,
    label: String,
    ok: usize,
    failed: usize,
    ok_y: usize,
    ok_h: usize,
    failed_y: usize,
    failed_h: usize,
}

#[derive(Debug, Serialize)]
struct Chart {
    width: usize,
    height: usize,
    bars: Vec<Bar>,
}

#[derive(Debug, Serialize)]
struct ProviderRow {
    name: String,
    succeeded: usize,
    failed: usize,
}

/// Answers a request for the console.
pub(crate) async fn handle<B>(state: &AuthState, req: Request<B>) -> Response<OwnBody>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let (parts, body) = req.into_parts();
    let admin = match signed_in_admin(state, &parts).await {
        Ok(admin) => admin,
        Err(answer) => return answer,
    };
    let rest = parts.uri.path().strip_prefix(PREFIX).unwrap_or("").to_owned();
    if parts.method == Method::GET || parts.method == Method::HEAD {
        return page(state, &parts, &admin, &rest).await;
    }
    if parts.method != Method::POST {
        return response::method_not_allowed(&parts.method, "GET, HEAD, POST");
    }
    let body = match request::read_body(body, state.config.limits.max_body_bytes).await {
        Ok(body) => body,
        Err(_) => return back("", "The form did not arrive whole."),
    };
    let form = Params::parse(&body);
    if !state.csrf.verify(
        cookie(&parts.headers, CSRF_COOKIE),
        form.one("csrf").ok().flatten(),
    ) {
        return back(
            &rest,
            "This form expired or did not come from this site: try again.",
        );
    }
    change(state, &parts, &admin, &rest, &form).await
}

/// The signed-in admin, or the answer for anyone else: off to sign in,
/// or a `403` page.
async fn signed_in_admin(state: &AuthState, parts: &Parts) -> Result<Admin, Response<OwnBody>> {
    let (key, session) = match super::session_of(state, parts).await {
        Some(found) => found,
        None => {
            let rd: String = form_urlencoded::byte_serialize(parts.uri.path().as_bytes()).collect();
            let location = format!("{}?rd={rd}", crate::auth::SIGN_IN_PATH);
            return Err(response::redirect(StatusCode::FOUND, &location)
                .expect("an encoded path is a valid Location"));
        }
    };
    if !is_admin(state, &session) {
        return Err(state.error_page(
            StatusCode::FORBIDDEN,
            "Admins only",
            "You are signed in, but the admin console is for admins.",
            "access_denied",
        ));
    }
    Ok(Admin {
        name: session.username().to_owned(),
        address: state.client_ip(&parts.extensions, &parts.headers),
        session: key,
    })
}

/// A `303` back to the console's `section` (which may carry a query),
/// saying `error` (or, with an empty one, that it was done).
fn back(section: &str, error: &str) -> Response<OwnBody> {
    let section = section.split('/').next().unwrap_or("");
    let query = match error {
        "" => "done=1".to_owned(),
        error => format!(
            "error={}",
            form_urlencoded::byte_serialize(error.as_bytes()).collect::<String>()
        ),
    };
    let joint = if section.contains('?') { '&' } else { '?' };
    response::redirect(StatusCode::SEE_OTHER, &format!("{PREFIX}{section}{joint}{query}"))
        .expect("a console path is a valid Location")
}

fn outcome(
    section: &str,
    result: Result<(StatusCode, Option<serde_json::Value>), Problem>,
) -> Response<OwnBody> {
    match result {
        Ok(_) => back(section, ""),
        Err(problem) => back(section, &problem.detail),
    }
}

/// A change the console's forms ask for.
async fn change(
    state: &AuthState,
    parts: &Parts,
    admin: &Admin,
    rest: &str,
    form: &Params,
) -> Response<OwnBody> {
    let get = |name| form.one(name).ok().flatten().map(str::to_owned);
    let segments: Vec<String> = rest
        .split('/')
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match segments.as_slice() {
        ["users"] => {
            let username = get("username").unwrap_or_default();
            let password = get("password").filter(|p| !p.is_empty());
            let invite = password.is_none();
            let body = NewUserBody {
                username: username.clone(),
                email: get("email").filter(|e| !e.is_empty()),
                name: get("name").filter(|n| !n.is_empty()),
                password,
                temporary: true,
            };
            match api::add_user(state, admin, body).await {
                Ok(_) if invite => {
                    let invited = api::invite_user(state, admin, &username).await;
                    shown_once(state, parts, admin, "users", invited).await
                }
                added => outcome("users", added),
            }
        }
        ["users", name, "invite"] => {
            let invited = api::invite_user(state, admin, name).await;
            shown_once(state, parts, admin, "users", invited).await
        }
        ["users", name, action @ ("disable" | "enable")] => {
            let change = UserChange {
                disabled: Some(*action == "disable"),
                password: None,
                temporary: false,
            };
            outcome("users", api::change_user(state, admin, name, change).await)
        }
        ["users", name, "delete"] => outcome("users", api::delete_user(state, admin, name).await),
        ["users", name, "factors", id, "remove"] => outcome(
            &factors_of(name),
            api::remove_factor(state, admin, name, id).await,
        ),
        ["users", name, "require"] => {
            let required = Required {
                required: get("required").as_deref() == Some("1"),
            };
            outcome(
                &factors_of(name),
                api::require_factor(state, admin, name, required).await,
            )
        }
        ["users", name, "revoke"] => outcome("users", api::revoke_sessions(state, admin, name).await),
        ["groups"] => {
            let body = NewGroupBody {
                name: get("name").unwrap_or_default(),
                description: None,
            };
            outcome("groups", api::add_group(state, admin, body).await)
        }
        ["members"] => {
            let (group, username) = (
                get("group").unwrap_or_default(),
                get("username").unwrap_or_default(),
            );
            let result = match get("remove") {
                Some(_) => api::remove_member(state, admin, &group, &username).await,
                None => api::add_member(state, admin, &group, &username).await,
            };
            let back_to = format!(
                "groups?group={}",
                form_urlencoded::byte_serialize(group.as_bytes()).collect::<String>()
            );
            outcome(&back_to, result)
        }
        ["clients"] => {
            let body = NewClientBody {
                client_id: get("client_id").filter(|id| !id.is_empty()),
                confidential: get("public").is_none(),
                redirect_uris: lines(get("redirect_uris").as_deref()),
                grants: Some(form.all("grant").map(str::to_owned).collect()),
                scopes: get("scopes")
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| s.split_whitespace().map(str::to_owned).collect()),
                cors_origins: Vec::new(),
                post_logout_redirect_uris: Vec::new(),
                backchannel_logout_uri: None,
                id_token_signed_response_alg: None,
                access_token_format: None,
                resources: Vec::new(),
                subject_type: None,
            };
            let made = api::add_client(state, admin, body).await;
            shown_once(state, parts, admin, "clients", made).await
        }
        ["clients", id, "rotate"] => {
            let rotated = api::rotate_secret(state, admin, id).await;
            shown_once(state, parts, admin, "clients", rotated).await
        }
        ["sessions", id, "end"] => {
            let back_to = sessions_of(&get("user").unwrap_or_default());
            outcome(&back_to, api::end_session(state, admin, id).await)
        }
        ["sessions", "of", name] => {
            outcome(&sessions_of(name), api::revoke_sessions(state, admin, name).await)
        }
        ["clients", id, "delete"] => outcome("clients", api::delete_client(state, admin, id).await),
        ["clients", id] => {
            let scopes = get("scopes").unwrap_or_default();
            let change = ClientChange {
                redirect_uris: Some(lines(get("redirect_uris").as_deref())),
                grants: Some(form.all("grant").map(str::to_owned).collect()),
                scopes: Some(
                    (!scopes.trim().is_empty())
                        .then(|| scopes.split_whitespace().map(str::to_owned).collect()),
                ),
                cors_origins: Some(lines(get("cors_origins").as_deref())),
                post_logout_redirect_uris: Some(lines(get("post_logout_redirect_uris").as_deref())),
                backchannel_logout_uri: Some(get("backchannel_logout_uri").filter(|u| !u.trim().is_empty())),
                id_token_signed_response_alg: get("id_token_alg"),
                access_token_format: get("access_token_format"),
                resources: Some(lines(get("resources").as_deref())),
                subject_type: get("subject_type"),
            };
            let page = format!(
                "clients/{}",
                form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
            );
            match api::change_client(state, admin, id, change).await {
                Ok(_) => back("clients", ""),
                Err(problem) => back(&page, &problem.detail),
            }
        }
        _ => state.error_page(
            StatusCode::NOT_FOUND,
            "Not found",
            "The console has no such form.",
            "not_found",
        ),
    }
}

/// The sessions page, of `user` (everyone's if empty).
/// The console's page of `user`'s second factors.
fn factors_of(user: &str) -> String {
    format!(
        "factors?user={}",
        form_urlencoded::byte_serialize(user.as_bytes()).collect::<String>()
    )
}

fn sessions_of(user: &str) -> String {
    match user {
        "" => "sessions".to_owned(),
        user => format!(
            "sessions?user={}",
            form_urlencoded::byte_serialize(user.as_bytes()).collect::<String>()
        ),
    }
}

/// The non-empty lines of a text area.
fn lines(text: Option<&str>) -> Vec<String> {
    text.unwrap_or("")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// After a client was made or its secret rotated, or an invitation made:
/// the section's page with the secret or link, this once (not a redirect,
/// which would put it in a URL), never stored by the browser; or back
/// with what went wrong.
async fn shown_once(
    state: &AuthState,
    parts: &Parts,
    admin: &Admin,
    section: &str,
    result: Result<(StatusCode, Option<serde_json::Value>), Problem>,
) -> Response<OwnBody> {
    let mut shown = match result {
        Ok((_, Some(shown))) => shown,
        Ok((_, None)) => return back(section, ""),
        Err(problem) => return back(section, &problem.detail),
    };
    if let Some(at) = shown["expires_at"].as_i64() {
        shown["expires"] = time(at).into();
    }
    let mut answer = page_with(state, parts, admin, section, Some(shown)).await;
    answer
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    answer
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map_or_else(|| "-".to_owned(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}

/// A page of the console.
async fn page(state: &AuthState, parts: &Parts, admin: &Admin, rest: &str) -> Response<OwnBody> {
    page_with(state, parts, admin, rest, None).await
}

/// A page of the console, with what to show once (a client and its
/// secret, an invitation).
async fn page_with(
    state: &AuthState,
    parts: &Parts,
    admin: &Admin,
    rest: &str,
    shown: Option<serde_json::Value>,
) -> Response<OwnBody> {
    let params = Params::from_query(parts.uri.query());
    let get = |name| params.one(name).ok().flatten().unwrap_or("").to_owned();
    let csrf = state
        .csrf
        .for_form(&parts.headers, state.config.server.is_https());
    let branding = &state.config.pages.branding;
    let mut context = serde_json::json!({
        "title": branding.title,
        "accent_color": branding.accent_color,
        "admin": admin.name,
        "csrf": csrf.field,
        "error": get("error"),
        "notice": if params.one("done").ok().flatten().is_some() { "Done." } else { "" },
    });
    if let Some(shown) = shown {
        context["shown"] = shown;
    }
    let filled = match rest {
        "" => dashboard(state, &mut context).await,
        "users" => {
            users(
                state,
                &mut context,
                &get("search"),
                get("offset").parse().unwrap_or(0),
            )
            .await
        }
        "groups" => groups(state, &mut context, &get("group")).await,
        "clients" => clients(state, &mut context).await,
        _ if rest.starts_with("clients/") => {
            let id = percent_decode_str(&rest["clients/".len()..])
                .decode_utf8_lossy()
                .into_owned();
            client(state, &mut context, &id).await
        }
        "sessions" => sessions(state, &mut context, &get("user")).await,
        "factors" => factors(state, &mut context, &get("user")).await,
        "audit" => audit(state, &mut context, &AuditAsked::of(&params)).await,
        "audit.jsonl" => return export(state, &AuditAsked::of(&params)).await,
        _ => {
            return state.error_page(
                StatusCode::NOT_FOUND,
                "Not found",
                "The console has no such page.",
                "not_found",
            )
        }
    };
    if let Err(problem) = filled {
        context["error"] = serde_json::Value::String(problem.detail);
    }
    let mut answer = response::html(StatusCode::OK, state.pages.admin(&context));
    csrf.set_on(&mut answer);
    answer
}

fn db_of(state: &AuthState) -> Result<&crate::db::Database, Problem> {
    state.database.as_ref().ok_or_else(|| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "This gateway has no [database]: people and groups are in config.toml.",
        )
    })
}

async fn dashboard(state: &AuthState, context: &mut serde_json::Value) -> Result<(), Problem> {
    context["section"] = "dashboard".into();
    context["heading"] = "Dashboard".into();
    let mut figures = Figures {
        live_sessions: state
            .store
            .live_count()
            .map_or_else(|| "—".to_owned(), |n| n.to_string()),
        ..Figures::default()
    };
    let (width, height) = (24 * 26, 120);
    let mut buckets = [(0usize, 0usize); 24];
    let mut providers: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    let since = crate::db::now_ms() - 24 * 3600 * 1000;
    let last_day = AuditFilter {
        event: Some("sign_in."),
        after: Some(since),
        limit: 1_000_000,
        ..AuditFilter::default()
    };
    let events = db_of(state)?.audit(&last_day).await?;
    for e in &events {
        let hour = usize::try_from((e.at - since) / 3_600_000).unwrap_or(0).min(23);
        let by = providers
            .entry(e.provider.clone().unwrap_or_else(|| "password".into()))
            .or_default();
        match e.event.as_str() {
            "sign_in.succeeded" => {
                figures.succeeded += 1;
                buckets[hour].0 += 1;
                by.0 += 1;
            }
            "sign_in.failed" => {
                figures.failed += 1;
                buckets[hour].1 += 1;
                by.1 += 1;
            }
            "sign_in.throttled" => figures.throttled += 1,
            _ => {}
        }
    }
    let top = buckets
        .iter()
        .map(|(a, b)| (*a).max(*b))
        .max()
        .unwrap_or(0)
        .max(1);
    let scale = |n: usize| n * (height - 10) / top;
    let bars: Vec<Bar> = buckets
        .iter()
        .enumerate()
        .map(|(i, (ok, failed))| Bar {
            x: i * 26 + 2,
            label: time(since + i as i64 * 3_600_000),
            ok: *ok,
            failed: *failed,
            ok_y: height - scale(*ok),
            ok_h: scale(*ok),
            failed_y: height - scale(*failed),
            failed_h: scale(*failed),
        })
        .collect();
    context["figures"] = serde_json::to_value(&figures).unwrap_or_default();
    context["chart"] = serde_json::to_value(Chart { width, height, bars }).unwrap_or_default();
    context["providers"] = serde_json::to_value(
        providers
            .into_iter()
            .map(|(name, (succeeded, failed))| ProviderRow {
                name,
                succeeded,
                failed,
            })
            .collect::<Vec<_>>(),
    )
    .unwrap_or_default();
    Ok(())
}

async fn users(
    state: &AuthState,
    context: &mut serde_json::Value,
    search: &str,
    offset: i64,
) -> Result<(), Problem> {
    const PAGE: i64 = 50;
    context["section"] = "users".into();
    context["heading"] = "Users".into();
    context["search"] = search.into();
    let offset = offset.max(0);
    context["offset"] = offset.into();
    context["previous"] = (offset - PAGE).max(0).into();
    context["next"] = (offset + PAGE).into();
    let query = UserQuery {
        search: (!search.is_empty()).then(|| search.to_owned()),
        offset: Some(offset),
        limit: Some(PAGE),
    };
    let (_, page) = api::list_users(state, query).await?;
    let page = page.unwrap_or_default();
    context["config_users"] = page.get("config_users").cloned().unwrap_or_default();
    let users = page.get("users").cloned().unwrap_or_default();
    context["more"] = (users.as_array().map_or(0, Vec::len) as i64 == PAGE).into();
    context["users"] = users;
    Ok(())
}

async fn groups(state: &AuthState, context: &mut serde_json::Value, group: &str) -> Result<(), Problem> {
    context["section"] = "groups".into();
    context["heading"] = "Groups".into();
    let (_, groups) = api::list_groups(state).await?;
    context["groups"] = groups.unwrap_or_default();
    if !group.is_empty() {
        context["group"] = group.into();
        let (_, members) = api::list_members(state, group).await?;
        context["members"] = members.unwrap_or_default();
    }
    Ok(())
}

async fn sessions(state: &AuthState, context: &mut serde_json::Value, user: &str) -> Result<(), Problem> {
    context["section"] = "sessions".into();
    context["heading"] = "Sessions".into();
    context["session_user"] = user.into();
    let query = SessionQuery {
        user: (!user.is_empty()).then(|| user.to_owned()),
        limit: Some(500),
    };
    let (_, list) = api::list_sessions(state, query).await?;
    let mut rows = list.and_then(|l| l.get("sessions").cloned()).unwrap_or_default();
    for row in rows.as_array_mut().into_iter().flatten() {
        for (secs, label) in [
            ("started_at", "started"),
            ("last_seen_at", "last_seen"),
            ("expires_at", "expires"),
        ] {
            let at = row[secs].as_i64().unwrap_or(0).saturating_mul(1000);
            row[label] = time(at).into();
        }
    }
    context["sessions"] = rows;
    Ok(())
}

/// One person's second factors: removing a lost one, requiring one.
async fn factors(state: &AuthState, context: &mut serde_json::Value, user: &str) -> Result<(), Problem> {
    context["section"] = "factors".into();
    context["heading"] = format!("Second factors of {user}").into();
    context["person"] = user.into();
    let (_, found) = api::list_factors(state, user).await?;
    let mut found = found.unwrap_or_default();
    for factor in found["factors"].as_array_mut().into_iter().flatten() {
        factor["added"] = time(factor["created_at"].as_i64().unwrap_or(0)).into();
        factor["used"] = factor["last_used_at"]
            .as_i64()
            .map_or_else(|| "never".to_owned(), time)
            .into();
    }
    context["factors"] = found;
    Ok(())
}

/// The page where one client of the database is changed.
async fn client(state: &AuthState, context: &mut serde_json::Value, id: &str) -> Result<(), Problem> {
    context["section"] = "client".into();
    context["heading"] = format!("Client {id}").into();
    context["grants"] = grant_names();
    let (_, found) = api::get_client(state, id).await?;
    context["client"] = found.unwrap_or_default();
    Ok(())
}

fn grant_names() -> serde_json::Value {
    crate::config::Grant::ALL
        .iter()
        .map(|g| g.as_str())
        .collect::<Vec<_>>()
        .into()
}

async fn clients(state: &AuthState, context: &mut serde_json::Value) -> Result<(), Problem> {
    context["section"] = "clients".into();
    context["heading"] = "OAuth clients".into();
    context["grants"] = grant_names();
    let (_, list) = api::list_clients(state).await?;
    context["clients"] = list.and_then(|l| l.get("clients").cloned()).unwrap_or_default();
    Ok(())
}

/// What the audit page and its export were asked for: person, kind,
/// and from/until (a browser's `datetime-local`, in UTC).
struct AuditAsked {
    user: String,
    event: String,
    after: String,
    before: String,
}

impl AuditAsked {
    fn of(params: &Params) -> Self {
        let get = |name| params.one(name).ok().flatten().unwrap_or("").trim().to_owned();
        Self {
            user: get("user"),
            event: get("event"),
            after: get("after"),
            before: get("before"),
        }
    }

    /// The filter, or why a time cannot be read.
    fn filter(&self, limit: i64) -> Result<AuditFilter<'_>, Problem> {
        let time = |text: &str| match text {
            "" => Ok(None),
            text => crate::db::time_of(text).map(Some).ok_or_else(|| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    format!("{text:?} is not a time: write it as 2026-12-01T09:00 (UTC)"),
                )
            }),
        };
        fn given(text: &str) -> Option<&str> {
            (!text.is_empty()).then_some(text)
        }
        Ok(AuditFilter {
            subject: given(&self.user),
            event: given(&self.event),
            after: time(&self.after)?,
            before: time(&self.before)?,
            limit,
        })
    }
}

async fn audit(
    state: &AuthState,
    context: &mut serde_json::Value,
    asked: &AuditAsked,
) -> Result<(), Problem> {
    context["section"] = "audit".into();
    context["heading"] = "Audit log".into();
    context["audit_user"] = asked.user.as_str().into();
    context["audit_event"] = asked.event.as_str().into();
    context["audit_after"] = asked.after.as_str().into();
    context["audit_before"] = asked.before.as_str().into();
    let events = db_of(state)?.audit(&asked.filter(500)?).await?;
    let rows: Vec<serde_json::Value> = events
        .into_iter()
        .map(|e| {
            let mut row = serde_json::to_value(&e).unwrap_or_default();
            row["when"] = time(e.at).into();
            row
        })
        .collect();
    context["events"] = rows.into();
    Ok(())
}

/// The audit log as JSON lines, for download.
async fn export(state: &AuthState, asked: &AuditAsked) -> Response<OwnBody> {
    let read = async {
        let filter = asked.filter(1_000_000)?;
        Ok::<_, Problem>(db_of(state)?.audit(&filter).await?)
    };
    let events = match read.await {
        Ok(events) => events,
        Err(problem) => return problem.into_response(),
    };
    let mut lines = Vec::new();
    for e in &events {
        if serde_json::to_writer(&mut lines, e).is_ok() {
            lines.push(b'\n');
        }
    }
    let mut answer = Response::new(http_body_util::Full::new(bytes::Bytes::from(lines)));
    let headers = answer.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"audit.jsonl\""),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    answer
}
