from app.workflows.context import WorkflowContext, WorkflowResult


async def run(ctx: WorkflowContext) -> WorkflowResult:
    client = ctx.integrations.okta
    if client is None:
        return WorkflowResult.fail("Okta integration is not configured")
    account = ctx.indicator.value
    try:
        reset_url = await client.reset_password(account)
    except Exception as exc:
        ctx.log.error("okta_password_reset_failed", account=account, error=str(exc))
        return WorkflowResult.fail(f"Failed to reset password: {exc}")
    data = {"account": account}
    if reset_url:
        data["reset_url"] = reset_url
    ctx.log.info("okta_password_reset", account=account)
    return WorkflowResult.ok(f"Reset Okta password for {account}", data=data)
