//! How a person signed in: the methods of RFC 8176 (`amr`) a session was
//! made with, and the level they add up to (`acr`).

use serde::{Deserialize, Serialize};

/// The methods a sign-in used, as a set. Kept in the session's origin, so
/// every token of one sign-in shares it; a second factor given later (a
/// step-up) adds to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AuthMethods(u8);

/// Each method, its bit and its RFC 8176 name.
const NAMES: [(AuthMethods, &str); 5] = [
    (AuthMethods::PASSWORD, "pwd"),
    (AuthMethods::ONE_TIME_CODE, "otp"),
    (AuthMethods::HARDWARE_KEY, "hwk"),
    (AuthMethods::SOFTWARE_KEY, "swk"),
    (AuthMethods::USER_VERIFIED, "user"),
];

impl AuthMethods {
    /// None known (a session of an outside provider whose methods are not
    /// trusted, or one kept before methods were recorded).
    pub const NONE: Self = Self(0);
    /// A password (`pwd`): something the person knows.
    pub const PASSWORD: Self = Self(1);
    /// A one-time code (`otp`): an authenticator app's, or a recovery
    /// code.
    pub const ONE_TIME_CODE: Self = Self(1 << 1);
    /// A security key (`hwk`): proof of a key held in hardware.
    pub const HARDWARE_KEY: Self = Self(1 << 2);
    /// A key held in software (`swk`), such as a synced passkey.
    pub const SOFTWARE_KEY: Self = Self(1 << 3);
    /// The authenticator verified the person (`user`: a PIN or biometric).
    pub const USER_VERIFIED: Self = Self(1 << 4);
    /// A trusted outside provider said the sign-in there took more than
    /// one factor (`amr` "mfa", or a multi-factor `acr`), whichever.
    pub const ASSERTED_MFA: Self = Self(1 << 5);

    /// Both sets.
    #[must_use]
    pub const fn with(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Whether every method of `other` is in this set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether no method is known.
    pub const fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// Whether two kinds of factor were given (something known, something
    /// held, something the person is): a password and a code or key, or a
    /// key that verified the person.
    pub const fn is_multi_factor(self) -> bool {
        if self.contains(Self::ASSERTED_MFA) {
            return true;
        }
        let known = self.contains(Self::PASSWORD) as u8;
        let held =
            (self.0 & (Self::ONE_TIME_CODE.0 | Self::HARDWARE_KEY.0 | Self::SOFTWARE_KEY.0) != 0) as u8;
        let is = self.contains(Self::USER_VERIFIED) as u8;
        known + held + is >= 2
    }

    /// `acr`: `"mfa"` for more than one factor, else `"password"`.
    pub const fn level(self) -> &'static str {
        match self.is_multi_factor() {
            true => "mfa",
            false => "password",
        }
    }

    /// `amr`: the methods' names, and `"mfa"` after them when they are
    /// more than one factor.
    pub fn names(self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = NAMES
            .iter()
            .filter(|(method, _)| self.contains(*method))
            .map(|(_, name)| *name)
            .collect();
        if self.is_multi_factor() {
            names.push("mfa");
        }
        names
    }

    /// The methods among RFC 8176 `names` (an outside provider's `amr`),
    /// unknown names left out.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        names.into_iter().fold(Self::NONE, |set, name| {
            match NAMES.iter().find(|(_, known)| *known == name) {
                Some((method, _)) => set.with(*method),
                None if name == "mfa" => set.with(Self::ASSERTED_MFA),
                None => set,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::AuthMethods as M;

    #[test]
    fn two_kinds_of_factor_are_multi_factor_and_one_kind_twice_is_not() {
        assert!(!M::PASSWORD.is_multi_factor());
        assert!(M::PASSWORD.with(M::ONE_TIME_CODE).is_multi_factor());
        assert!(M::PASSWORD.with(M::HARDWARE_KEY).is_multi_factor());
        assert!(M::HARDWARE_KEY.with(M::USER_VERIFIED).is_multi_factor());
        assert!(!M::HARDWARE_KEY.with(M::ONE_TIME_CODE).is_multi_factor());
        assert!(!M::NONE.is_multi_factor());
        assert_eq!(M::PASSWORD.level(), "password");
        assert_eq!(M::PASSWORD.with(M::ONE_TIME_CODE).names(), ["pwd", "otp", "mfa"]);
        assert_eq!(
            M::SOFTWARE_KEY.with(M::USER_VERIFIED).names(),
            ["swk", "user", "mfa"]
        );
        assert_eq!(
            M::from_names(["pwd", "otp", "sms"]),
            M::PASSWORD.with(M::ONE_TIME_CODE)
        );
        let asserted = M::from_names(["pwd", "mfa"]);
        assert!(asserted.is_multi_factor());
        assert_eq!(asserted.names(), ["pwd", "mfa"]);
    }
}
