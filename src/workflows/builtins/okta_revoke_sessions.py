from app.workflows.context import WorkflowContext, WorkflowResult


async def run(ctx: WorkflowContext) -> WorkflowResult:
    client = ctx.integrations.okta
    if client is None:
        return WorkflowResult.fail("Okta integration is not configured")
    account = ctx.indicator.value
    try:
        await client.revoke_sessions(account)
    except Exception as exc:
        ctx.log.error("okta_sessions_revoked_failed", account=account, error=str(exc))
        return WorkflowResult.fail(f"Failed to revoke sessions: {exc}")
    ctx.log.info("okta_sessions_revoked", account=account)
    return WorkflowResult.ok(f"Revoked all Okta sessions for {account}", data={"account": account})
