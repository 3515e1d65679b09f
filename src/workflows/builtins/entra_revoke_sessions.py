from app.workflows.context import WorkflowContext, WorkflowResult


async def run(ctx: WorkflowContext) -> WorkflowResult:
    client = ctx.integrations.entra
    if client is None:
        return WorkflowResult.fail("Microsoft Entra integration is not configured")
    account = ctx.indicator.value
    try:
        await client.revoke_sessions(account)
    except Exception as exc:
        ctx.log.error("entra_sessions_revoked_failed", account=account, error=str(exc))
        return WorkflowResult.fail(f"Failed to revoke sign-in sessions: {exc}")
    ctx.log.info("entra_sessions_revoked", account=account)
    return WorkflowResult.ok(f"Revoked Entra sign-in sessions for {account}", data={"account": account})
