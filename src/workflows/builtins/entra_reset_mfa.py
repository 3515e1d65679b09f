from app.workflows.context import WorkflowContext, WorkflowResult


async def run(ctx: WorkflowContext) -> WorkflowResult:
    client = ctx.integrations.entra
    if client is None:
        return WorkflowResult.fail("Microsoft Entra integration is not configured")
    account = ctx.indicator.value
    try:
        await client.reset_mfa(account)
    except Exception as exc:
        ctx.log.error("entra_mfa_reset_failed", account=account, error=str(exc))
        return WorkflowResult.fail(f"Failed to reset MFA methods: {exc}")
    ctx.log.info("entra_mfa_reset", account=account)
    return WorkflowResult.ok(f"Forced MFA re-registration for {account}", data={"account": account})
