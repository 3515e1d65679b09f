from app.workflows.context import WorkflowContext, WorkflowResult


async def run(ctx: WorkflowContext) -> WorkflowResult:
    client = ctx.integrations.okta
    if client is None:
        return WorkflowResult.fail("Okta integration is not configured")
    account = ctx.indicator.value
    try:
        await client.unsuspend_user(account)
    except Exception as exc:
        ctx.log.error("okta_user_unsuspended_failed", account=account, error=str(exc))
        return WorkflowResult.fail(f"Failed to unsuspend user: {exc}")
    ctx.log.info("okta_user_unsuspended", account=account)
    return WorkflowResult.ok(f"Unsuspended Okta user {account}", data={"account": account})
