from app.workflows.context import WorkflowContext, WorkflowResult


async def run(ctx: WorkflowContext) -> WorkflowResult:
    client = ctx.integrations.entra
    if client is None:
        return WorkflowResult.fail("Microsoft Entra integration is not configured")
    account = ctx.indicator.value
    try:
        await client.enable_account(account)
    except Exception as exc:
        ctx.log.error("entra_account_enabled_failed", account=account, error=str(exc))
        return WorkflowResult.fail(f"Failed to enable account: {exc}")
    ctx.log.info("entra_account_enabled", account=account)
    return WorkflowResult.ok(f"Enabled Entra account {account}", data={"account": account})
