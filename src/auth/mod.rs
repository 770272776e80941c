//! The sign-in check and what it stands on: the credential a request
//! carries, what a client may send on, paths, the sign-in form's CSRF
//! field and pages, brute-force throttling, and the state the layer's
//! services share.

/// The sign-in page, where a browser is sent to sign in.
pub(crate) const SIGN_IN_PATH: &str = "/management/authorize";

/// Where someone signed in with a temporary password is sent first.
/// Where an invitation link leads: the new user chooses a password.
pub(crate) const INVITATION_PATH: &str = "/management/invitation";
/// The page that asks for a second factor, at sign-in or to step up.
pub(crate) const SECOND_FACTOR_PATH: &str = "/management/second-factor";
pub(crate) const CHANGE_PASSWORD_PAGE: &str = "/management/account?done=must_change";

pub(crate) mod backchannel;
pub(crate) mod client_fields;
pub(crate) mod credential;
pub(crate) mod csrf;
pub(crate) mod decision;
pub(crate) mod identity_jwt;
pub(crate) mod pages;
pub(crate) mod state;
pub(crate) mod throttle;
