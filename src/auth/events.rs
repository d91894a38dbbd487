//! Reading the audit trail: a user's own events, and the whole trail for admins.

use std::sync::Arc;

use super::{AuthError, Budgets, Principal, RequestContext};
use crate::audit::Audit;
use crate::audit::query::{AuditQuery, Page};

/// The trail as its readers see it: it holds only the trail and the reads budget.
pub struct Events {
    audit: Audit,
    budgets: Arc<Budgets>,
}

impl Events {
    pub fn new(audit: Audit, budgets: Arc<Budgets>) -> Self {
        Self { audit, budgets }
    }

    /// The caller's own security events, newest first. Any `user_id` parameter is ignored: a
    /// user sees their own events only.
    pub async fn own_events(
        &self,
        context: &RequestContext,
        principal: &Principal,
        query: &AuditQuery,
    ) -> Result<Page, AuthError> {
        self.budgets.limit_read(context, principal).await?;
        let mut filter = query.filter().map_err(AuthError::InvalidQuery)?;
        filter.user = Some(principal.user);
        Ok(self.audit.page(filter).await?)
    }

    /// The whole trail, filtered, for admins (the caller passed `admit_admin`).
    pub async fn audit_trail(&self, query: &AuditQuery) -> Result<Page, AuthError> {
        let filter = query.filter().map_err(AuthError::InvalidQuery)?;
        Ok(self.audit.page(filter).await?)
    }
}
