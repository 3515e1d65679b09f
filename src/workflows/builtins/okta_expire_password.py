from app.workflows.context import WorkflowContext, WorkflowResult


async def run(ctx: WorkflowContext) -> WorkflowResult:
    client = ctx.integrations.okta
    if client is None:
        return WorkflowResult.fail("Okta integration is not configured")
    account = ctx.indicator.value
    try:
        await client.expire_password(account)
    except Exception as exc:
        ctx.log.error("okta_password_expired_failed", account=account, error=str(exc))
        return WorkflowResult.fail(f"Failed to expire password: {exc}")
    ctx.log.info("okta_password_expired", account=account)
    return WorkflowResult.ok(f"Expired Okta password for {account}", data={"account": account})
