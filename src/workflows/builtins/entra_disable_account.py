from app.workflows.context import WorkflowContext, WorkflowResult


async def run(ctx: WorkflowContext) -> WorkflowResult:
    client = ctx.integrations.entra
    if client is None:
        return WorkflowResult.fail("Microsoft Entra integration is not configured")
    account = ctx.indicator.value
    try:
        await client.disable_account(account)
    except Exception as exc:
        ctx.log.error("entra_account_disabled_failed", account=account, error=str(exc))
        return WorkflowResult.fail(f"Failed to disable account: {exc}")
    ctx.log.info("entra_account_disabled", account=account)
    return WorkflowResult.ok(f"Disabled Entra account {account}", data={"account": account})
