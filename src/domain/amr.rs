//! What a login proved: the authentication method references of RFC 8176, as the `amr` claim of
//! access tokens carries them, so that a resource server can require a second factor.

/// A set of RFC 8176 methods. The claim lists them in one fixed order (`pwd`, `otp`, `hwk`,
/// `user`, `mfa`), so equal sets always print alike.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Amr(u8);

/// Each method, its bit, in the order of the claim.
const METHODS: [(&str, u8); 5] =
    [("pwd", 1), ("otp", 1 << 1), ("hwk", 1 << 2), ("user", 1 << 3), ("mfa", 1 << 4)];

impl Amr {
    /// A password alone.
    pub const PASSWORD: Amr = Amr(1);
    /// A password and a TOTP code.
    pub const PASSWORD_AND_TOTP: Amr = Amr(1 | 1 << 1 | 1 << 4);
    /// A password and a recovery code.
    pub const PASSWORD_AND_RECOVERY_CODE: Amr = Amr(1 | 1 << 4);

    /// A passkey: proof of possession of a hardware-bound key, and of the user's presence; with
    /// user verification (a PIN or biometric on the authenticator) it is two factors in one.
    pub fn passkey(user_verified: bool) -> Amr {
        let possession = 1 << 2 | 1 << 3;
        Amr(if user_verified { possession | 1 << 4 } else { possession })
    }

    /// Whether the login proved two factors.
    pub fn is_multi_factor(self) -> bool {
        self.0 & 1 << 4 != 0
    }

    /// The methods' names, in the claim's order.
    pub fn names(self) -> Vec<&'static str> {
        METHODS.iter().filter(|(_, bit)| self.0 & bit != 0).map(|(name, _)| *name).collect()
    }

    /// The stored form: names joined by commas.
    pub fn to_column(self) -> String {
        self.names().join(",")
    }

    /// Reads the stored form; unknown names are ignored, and nothing known means a password
    /// (sessions from before methods were recorded).
    pub fn from_column(column: &str) -> Amr {
        let bits = column
            .split(',')
            .filter_map(|name| METHODS.iter().find(|(known, _)| *known == name))
            .fold(0, |bits, (_, bit)| bits | bit);
        if bits == 0 { Amr::PASSWORD } else { Amr(bits) }
    }
}

#[cfg(test)]
mod tests {
    use super::Amr;

    #[test]
    fn each_login_names_its_methods_in_the_claims_order() {
        assert_eq!(Amr::PASSWORD.names(), ["pwd"]);
        assert_eq!(Amr::PASSWORD_AND_TOTP.names(), ["pwd", "otp", "mfa"]);
        assert_eq!(Amr::PASSWORD_AND_RECOVERY_CODE.names(), ["pwd", "mfa"]);
        assert_eq!(Amr::passkey(false).names(), ["hwk", "user"]);
        assert_eq!(Amr::passkey(true).names(), ["hwk", "user", "mfa"]);
    }

    #[test]
    fn the_stored_form_round_trips_and_old_rows_read_as_a_password() {
        for amr in [Amr::PASSWORD_AND_TOTP, Amr::passkey(true), Amr::PASSWORD] {
            assert_eq!(Amr::from_column(&amr.to_column()), amr);
        }
        assert_eq!(Amr::from_column(""), Amr::PASSWORD);
        assert_eq!(Amr::from_column("junk"), Amr::PASSWORD);
    }
}
