-- Approval notifiers (issue 10): where the chat message of a request landed, so it can be edited
-- after the decision. external_message_id (0001) holds Slack's message `ts`; Slack edits need the
-- channel's id too (chat.postMessage accepts a name like `#soc`, chat.update only the id it
-- answered with).
ALTER TABLE workflow_approval_requests ADD COLUMN external_channel_id TEXT;
