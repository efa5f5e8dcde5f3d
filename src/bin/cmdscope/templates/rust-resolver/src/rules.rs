//! Who sees which menu. Every profile `decide` may return must be listed in `PROFILES` (the
//! host checks them against the config's profiles when it loads the plugin).

pub const PROFILES: &[&str] = &["admin", "user", "guest"];

/// `flags`: the names of the user's flags set to `true`.
pub fn decide(flags: &[&str]) -> &'static str {
    if flags.contains(&"admin") {
        "admin"
    } else if flags.contains(&"registered") {
        "user"
    } else {
        "guest"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admins_then_registered_users_then_guests() {
        assert_eq!(decide(&[]), "guest");
        assert_eq!(decide(&["registered"]), "user");
        assert_eq!(decide(&["registered", "admin"]), "admin");
        assert!(PROFILES.contains(&decide(&["admin"])));
    }
}
