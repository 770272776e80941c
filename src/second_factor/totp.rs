//! Authenticator apps: RFC 6238 time-based one-time codes with the
//! parameters every app expects (HMAC-SHA-1, 6 digits, 30-second steps),
//! by the `totp-rs` crate.

use totp_rs::{Algorithm, TOTP};

/// Seconds a code lasts.
pub(crate) const STEP_SECS: u64 = 30;
const DIGITS: usize = 6;
/// Bytes of a new secret: 160 bits, as RFC 4226 recommends.
const SECRET_BYTES: usize = 20;

/// One person's authenticator: its secret, and the name apps show it by.
pub(crate) struct Authenticator {
    totp: TOTP,
}

impl Authenticator {
    /// A new random secret.
    pub(crate) fn new_secret() -> Vec<u8> {
        let mut secret = vec![0u8; SECRET_BYTES];
        getrandom::fill(&mut secret).expect("the operating system's random source failed");
        secret
    }

    /// The authenticator of `secret`, shown in apps as `account` at
    /// `issuer`.
    pub(crate) fn new(secret: Vec<u8>, issuer: &str, account: &str) -> Self {
        // An issuer or account with a colon would make the otpauth label
        // ambiguous; apps show the text only.
        let clean = |text: &str| text.replace(':', " ");
        Self {
            totp: TOTP::new_unchecked(
                Algorithm::SHA1,
                DIGITS,
                1,
                STEP_SECS,
                secret,
                Some(clean(issuer)),
                clean(account),
            ),
        }
    }

    /// The secret as apps take it typed in: base32, no padding.
    pub(crate) fn secret_text(&self) -> String {
        self.totp.get_secret_base32()
    }

    /// The `otpauth://totp/…` URI a QR code carries.
    pub(crate) fn uri(&self) -> String {
        self.totp.get_url()
    }

    /// The code of time step `step`.
    pub(crate) fn code_at_step(&self, step: u64) -> String {
        self.totp.generate(step * STEP_SECS)
    }

    /// The step whose code `code` is, among the current one (at `now`,
    /// seconds since the epoch) and the one each side of it (a clock a
    /// little off, a code typed as it changed); compared in constant time.
    pub(crate) fn matching_step(&self, code: &str, now: u64) -> Option<u64> {
        let code = code.trim();
        if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let current = now / STEP_SECS;
        let mut found = None;
        for step in [current.saturating_sub(1), current, current + 1] {
            let expected = self.code_at_step(step);
            if bool::from(subtle::ConstantTimeEq::ct_eq(
                expected.as_bytes(),
                code.as_bytes(),
            )) {
                found = Some(step);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B's SHA-1 vectors: the 20-byte ASCII secret
    /// "12345678901234567890", 8 digits.
    #[test]
    fn the_rfc_6238_test_vectors() {
        let totp = TOTP::new_unchecked(
            Algorithm::SHA1,
            8,
            1,
            30,
            b"12345678901234567890".to_vec(),
            None,
            String::new(),
        );
        for (time, code) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(totp.generate(time), code, "at {time}");
        }
    }

    #[test]
    fn the_current_step_and_its_neighbours_match_and_no_other() {
        let app = Authenticator::new(b"12345678901234567890".to_vec(), "authgate", "alice");
        let now = 1_234_567_890;
        let step = now / STEP_SECS;
        for near in [step - 1, step, step + 1] {
            assert_eq!(app.matching_step(&app.code_at_step(near), now), Some(near));
        }
        for far in [step - 2, step + 2] {
            let code = app.code_at_step(far);
            let near_codes: Vec<String> = (step - 1..=step + 1).map(|s| app.code_at_step(s)).collect();
            if !near_codes.contains(&code) {
                assert_eq!(app.matching_step(&code, now), None);
            }
        }
        assert_eq!(app.matching_step("12345", now), None);
        assert_eq!(app.matching_step("abcdef", now), None);
        assert!(app.uri().starts_with("otpauth://totp/"), "{}", app.uri());
        assert_eq!(app.secret_text(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
    }
}
