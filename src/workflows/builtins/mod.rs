//! The nine builtin workflows (workflows.md §9): their Python sources ship inside the binary and
//! are seeded as system workflows (`is_system = true`, indicator type `account`, approval
//! `always`, 60 s timeout). Seeding itself belongs to the workflows service.

/// Integration a builtin workflow drives; it decides `is_active` at first seeding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integration {
    Okta,
    Entra,
}

/// One builtin workflow row as seeded.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    pub name: &'static str,
    pub risk_level: &'static str,
    pub integration: Integration,
    pub code: &'static str,
    pub documentation: &'static str,
}

pub const WORKFLOW_TYPE: &str = "indicator";
pub const INDICATOR_TYPES: &[&str] = &["account"];
pub const APPROVAL_MODE: &str = "always";
pub const TIMEOUT_SECONDS: i64 = 60;
pub const APPROVAL_TIMEOUT_SECONDS: i64 = 3600;

pub const BUILTINS: [Builtin; 9] = [
    Builtin {
        name: "Okta — Revoke All Sessions",
        risk_level: "low",
        integration: Integration::Okta,
        code: include_str!("okta_revoke_sessions.py"),
        documentation: "## Description\nRevokes every active Okta session of the account, forcing it to sign in again.\n\n## When to Use\nWhen the account shows signs of session hijacking or token theft.\n\n## Required Secrets\n`OKTA_DOMAIN` and `OKTA_API_TOKEN` (the server holds them; the workflow never sees them).\n\n## Expected Outcome\nAll Okta sessions of the account are revoked; the user must sign in again.\n\n## Error Cases\n- `Okta integration is not configured` when the credentials are not set.\n- `Failed to ...: <error>` when the identity provider rejects the call (unknown user, missing permission).",
    },
    Builtin {
        name: "Okta — Suspend User",
        risk_level: "high",
        integration: Integration::Okta,
        code: include_str!("okta_suspend_user.py"),
        documentation: "## Description\nSuspends the Okta user so it can no longer sign in.\n\n## When to Use\nWhen the account is confirmed compromised or is acting maliciously.\n\n## Required Secrets\n`OKTA_DOMAIN` and `OKTA_API_TOKEN` (the server holds them; the workflow never sees them).\n\n## Expected Outcome\nThe Okta user is in the SUSPENDED state and cannot sign in until unsuspended.\n\n## Error Cases\n- `Okta integration is not configured` when the credentials are not set.\n- `Failed to ...: <error>` when the identity provider rejects the call (unknown user, missing permission).",
    },
    Builtin {
        name: "Okta — Unsuspend User",
        risk_level: "medium",
        integration: Integration::Okta,
        code: include_str!("okta_unsuspend_user.py"),
        documentation: "## Description\nLifts an Okta suspension.\n\n## When to Use\nWhen an investigation cleared a suspended account.\n\n## Required Secrets\n`OKTA_DOMAIN` and `OKTA_API_TOKEN` (the server holds them; the workflow never sees them).\n\n## Expected Outcome\nThe Okta user is ACTIVE again.\n\n## Error Cases\n- `Okta integration is not configured` when the credentials are not set.\n- `Failed to ...: <error>` when the identity provider rejects the call (unknown user, missing permission).",
    },
    Builtin {
        name: "Okta — Reset Password",
        risk_level: "medium",
        integration: Integration::Okta,
        code: include_str!("okta_reset_password.py"),
        documentation: "## Description\nStarts an Okta password reset and e-mails the user; the reset URL is returned when Okta provides one.\n\n## When to Use\nWhen credentials of the account may have leaked.\n\n## Required Secrets\n`OKTA_DOMAIN` and `OKTA_API_TOKEN` (the server holds them; the workflow never sees them).\n\n## Expected Outcome\nThe password is reset; `data.reset_url` holds the reset link when Okta returns it.\n\n## Error Cases\n- `Okta integration is not configured` when the credentials are not set.\n- `Failed to ...: <error>` when the identity provider rejects the call (unknown user, missing permission).",
    },
    Builtin {
        name: "Okta — Force Password Expiry",
        risk_level: "low",
        integration: Integration::Okta,
        code: include_str!("okta_expire_password.py"),
        documentation: "## Description\nExpires the Okta password so the user must change it at next sign-in.\n\n## When to Use\nWhen a password change is wanted without locking the user out.\n\n## Required Secrets\n`OKTA_DOMAIN` and `OKTA_API_TOKEN` (the server holds them; the workflow never sees them).\n\n## Expected Outcome\nThe user must choose a new password at the next sign-in.\n\n## Error Cases\n- `Okta integration is not configured` when the credentials are not set.\n- `Failed to ...: <error>` when the identity provider rejects the call (unknown user, missing permission).",
    },
    Builtin {
        name: "Entra — Revoke Sign-in Sessions",
        risk_level: "low",
        integration: Integration::Entra,
        code: include_str!("entra_revoke_sessions.py"),
        documentation: "## Description\nRevokes the Microsoft Entra ID refresh tokens and session cookies of the account.\n\n## When to Use\nWhen the account shows signs of session hijacking or token theft.\n\n## Required Secrets\n`ENTRA_TENANT_ID`, `ENTRA_CLIENT_ID` and `ENTRA_CLIENT_SECRET` (the server holds them; the workflow never sees them).\n\n## Expected Outcome\nAll Entra sign-in sessions of the account are invalidated.\n\n## Error Cases\n- `Microsoft Entra integration is not configured` when the credentials are not set.\n- `Failed to ...: <error>` when the identity provider rejects the call (unknown user, missing permission).",
    },
    Builtin {
        name: "Entra — Disable Account",
        risk_level: "high",
        integration: Integration::Entra,
        code: include_str!("entra_disable_account.py"),
        documentation: "## Description\nDisables the Microsoft Entra ID account (`accountEnabled: false`).\n\n## When to Use\nWhen the account is confirmed compromised or is acting maliciously.\n\n## Required Secrets\n`ENTRA_TENANT_ID`, `ENTRA_CLIENT_ID` and `ENTRA_CLIENT_SECRET` (the server holds them; the workflow never sees them).\n\n## Expected Outcome\nThe account cannot sign in until it is enabled again.\n\n## Error Cases\n- `Microsoft Entra integration is not configured` when the credentials are not set.\n- `Failed to ...: <error>` when the identity provider rejects the call (unknown user, missing permission).",
    },
    Builtin {
        name: "Entra — Enable Account",
        risk_level: "medium",
        integration: Integration::Entra,
        code: include_str!("entra_enable_account.py"),
        documentation: "## Description\nEnables a disabled Microsoft Entra ID account (`accountEnabled: true`).\n\n## When to Use\nWhen an investigation cleared a disabled account.\n\n## Required Secrets\n`ENTRA_TENANT_ID`, `ENTRA_CLIENT_ID` and `ENTRA_CLIENT_SECRET` (the server holds them; the workflow never sees them).\n\n## Expected Outcome\nThe account can sign in again.\n\n## Error Cases\n- `Microsoft Entra integration is not configured` when the credentials are not set.\n- `Failed to ...: <error>` when the identity provider rejects the call (unknown user, missing permission).",
    },
    Builtin {
        name: "Entra — Force MFA Re-registration",
        risk_level: "high",
        integration: Integration::Entra,
        code: include_str!("entra_reset_mfa.py"),
        documentation: "## Description\nDeletes every non-password authentication method of the account so the user must register MFA again.\n\n## When to Use\nWhen an attacker may have registered their own MFA method.\n\n## Required Secrets\n`ENTRA_TENANT_ID`, `ENTRA_CLIENT_ID` and `ENTRA_CLIENT_SECRET` (the server holds them; the workflow never sees them).\n\n## Expected Outcome\nAll MFA methods except the password are removed.\n\n## Error Cases\n- `Microsoft Entra integration is not configured` when the credentials are not set.\n- `Failed to ...: <error>` when the identity provider rejects the call (unknown user, missing permission).",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_passes_validation_and_names_are_unique() {
        let mut names = std::collections::HashSet::new();
        for builtin in BUILTINS {
            assert!(names.insert(builtin.name), "duplicate {}", builtin.name);
            assert_eq!(
                crate::workflows::validate_code(builtin.code),
                Vec::<String>::new(),
                "{}",
                builtin.name
            );
            assert!(["low", "medium", "high"].contains(&builtin.risk_level));
            assert!(builtin.documentation.contains("## Error Cases"));
        }
        assert_eq!(names.len(), 9);
    }
}
