//! Security keys and passkeys: WebAuthn ceremonies by the `webauthn-rs`
//! crate. Every credential is registered as a discoverable passkey that
//! verifies the person (a PIN or biometric), so one key serves both as a
//! second factor after the password and, with `passkeys = true`, alone.
//! A ceremony's state is kept between its two requests as JSON; a key's
//! counter going backwards (a cloned key) is refused.

use base64::Engine;
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, Uuid, Webauthn, WebauthnBuilder, WebauthnError,
};

use crate::config::WebauthnConfig;
use crate::store::AuthMethods;

/// The kind of a security key's or passkey's factor in the database.
pub(crate) const WEBAUTHN: &str = "webauthn";

/// The relying party of `config`, or `None` (logged) if webauthn-rs
/// refuses it.
pub(crate) fn relying_party(config: &WebauthnConfig, name: &str) -> Option<Webauthn> {
    let built =
        WebauthnBuilder::new(&config.rp_id, &config.origin).and_then(|builder| builder.rp_name(name).build());
    match built {
        Ok(webauthn) => Some(webauthn),
        Err(err) => {
            tracing::error!(error = %err, rp_id = %config.rp_id, "WebAuthn is off: its relying party was refused");
            None
        }
    }
}

/// A ceremony begun: what the browser is sent (`publicKey` options), and
/// the state its answer is checked against.
pub(crate) struct Begun {
    pub(crate) options: serde_json::Value,
    pub(crate) state: String,
}

/// Why an answer was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refused {
    /// The key's counter did not go up: it may have been cloned.
    #[error("this key's signature counter went backwards: it may have been copied")]
    Cloned,
    #[error("{0}")]
    Invalid(String),
}

impl From<WebauthnError> for Refused {
    fn from(err: WebauthnError) -> Self {
        match err {
            WebauthnError::CredentialPossibleCompromise => Refused::Cloned,
            other => Refused::Invalid(other.to_string()),
        }
    }
}

fn state_of<T: serde::Serialize>(state: &T) -> String {
    serde_json::to_string(state).expect("webauthn-rs states serialize")
}

fn parsed<T: serde::de::DeserializeOwned>(what: &str, json: &str) -> Result<T, Refused> {
    serde_json::from_str(json).map_err(|e| Refused::Invalid(format!("{what}: {e}")))
}

/// The id of a credential, as the database keys it (base64url).
pub(crate) fn credential_key(id: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id)
}

/// The WebAuthn user handle of `username`: its stable UUID.
fn user_handle(username: &str) -> Uuid {
    Uuid::parse_str(&crate::store::user_uuid(username)).expect("user_uuid makes UUIDs")
}

/// Begins registering a new key for `username`, none of `existing` again;
/// the key must keep the credential (discoverable) and verify the person.
pub(crate) fn begin_registration(
    webauthn: &Webauthn,
    username: &str,
    existing: &[Passkey],
) -> Result<Begun, Refused> {
    let exclude = existing.iter().map(|key| key.cred_id().clone()).collect();
    let (mut options, state) =
        webauthn.start_passkey_registration(user_handle(username), username, username, Some(exclude))?;
    // webauthn-rs asks for a discoverable credential only as "discouraged";
    // its answer is checked the same either way.
    if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
        selection.require_resident_key = true;
        let mut value = serde_json::to_value(&*selection).expect("serializes");
        value["residentKey"] = "required".into();
        if let Ok(required) = serde_json::from_value(value) {
            *selection = required;
        }
    }
    Ok(Begun {
        options: serde_json::to_value(&options).expect("serializes"),
        state: state_of(&state),
    })
}

/// The key the browser's `answer` registered, checked against `state`.
pub(crate) fn finish_registration(
    webauthn: &Webauthn,
    state: &str,
    answer: &serde_json::Value,
) -> Result<Passkey, Refused> {
    let state: PasskeyRegistration = parsed("the registration", state)?;
    let answer: RegisterPublicKeyCredential = serde_json::from_value(answer.clone())
        .map_err(|e| Refused::Invalid(format!("the browser's answer: {e}")))?;
    Ok(webauthn.finish_passkey_registration(&answer, &state)?)
}

/// Begins a sign-in with one of `keys` (a known person's).
pub(crate) fn begin_authentication(webauthn: &Webauthn, keys: &[Passkey]) -> Result<Begun, Refused> {
    let (options, state) = webauthn.start_passkey_authentication(keys)?;
    Ok(Begun {
        options: serde_json::to_value(&options).expect("serializes"),
        state: state_of(&state),
    })
}

/// Begins a sign-in with a passkey alone: the authenticator says whose.
pub(crate) fn begin_discoverable(webauthn: &Webauthn) -> Result<Begun, Refused> {
    let (options, state) = webauthn.start_discoverable_authentication()?;
    let mut options = serde_json::to_value(&options).expect("serializes");
    // A button press, not the autofill UI.
    if let Some(object) = options.as_object_mut() {
        object.remove("mediation");
    }
    Ok(Begun {
        options,
        state: state_of(&state),
    })
}

/// The browser's answer to a sign-in, read.
pub(crate) fn answer_of(answer: &serde_json::Value) -> Result<PublicKeyCredential, Refused> {
    serde_json::from_value(answer.clone()).map_err(|e| Refused::Invalid(format!("the browser's answer: {e}")))
}

/// The credential an answer to a passkey-alone sign-in names, as the
/// database keys it.
pub(crate) fn named_credential(webauthn: &Webauthn, answer: &PublicKeyCredential) -> Result<String, Refused> {
    let (_, id) = webauthn.identify_discoverable_authentication(answer)?;
    Ok(credential_key(id))
}

/// What a sign-in with a key proved: its methods, and the key with its
/// counter moved on (to keep).
pub(crate) struct Proven {
    pub(crate) methods: AuthMethods,
    pub(crate) key: Passkey,
}

fn proven(mut key: Passkey, result: &webauthn_rs::prelude::AuthenticationResult) -> Proven {
    key.update_credential(result);
    // A synced passkey can be backed up; a security key's cannot leave it.
    let held = match result.backup_eligible() {
        true => AuthMethods::SOFTWARE_KEY,
        false => AuthMethods::HARDWARE_KEY,
    };
    let verified = match result.user_verified() {
        true => AuthMethods::USER_VERIFIED,
        false => AuthMethods::NONE,
    };
    Proven {
        methods: held.with(verified),
        key,
    }
}

/// Checks an answer to [`begin_authentication`] against `state` and the
/// person's `keys`.
pub(crate) fn finish_authentication(
    webauthn: &Webauthn,
    state: &str,
    answer: &PublicKeyCredential,
    keys: &[Passkey],
) -> Result<Proven, Refused> {
    let state: PasskeyAuthentication = parsed("the sign-in", state)?;
    let result = webauthn.finish_passkey_authentication(answer, &state)?;
    let key = keys
        .iter()
        .find(|k| k.cred_id() == result.cred_id())
        .cloned()
        .ok_or_else(|| Refused::Invalid("a key that is not this person's".into()))?;
    Ok(proven(key, &result))
}

/// Checks an answer to [`begin_discoverable`] against `state` and the key
/// it named.
pub(crate) fn finish_discoverable(
    webauthn: &Webauthn,
    state: &str,
    answer: &PublicKeyCredential,
    key: Passkey,
) -> Result<Proven, Refused> {
    let state: DiscoverableAuthentication = parsed("the sign-in", state)?;
    let result = webauthn.finish_discoverable_authentication_v2(answer, state, &key)?;
    Ok(proven(key, &result))
}

/// A stored key, read back.
pub(crate) fn key_of(json: &str) -> Option<Passkey> {
    serde_json::from_str(json).ok()
}

/// A key as the database keeps it.
pub(crate) fn stored(key: &Passkey) -> String {
    serde_json::to_string(key).expect("a passkey serializes")
}
